//! `etcdops alarm list|disarm`: etcdctl's `alarm list` and `alarm disarm`, asked of the first
//! endpoint that answers. `-w json` is etcdctl's AlarmResponse document
//! (`{"header", "alarms": [{"memberID", "alarm"}]}`, the alarm as etcd's enum number: 1
//! NOSPACE, 2 CORRUPT); simple is etcdctl's `memberID:N alarm:NAME`.

use anyhow::{anyhow, Result};
use serde_json::{json, Map, Value};

use crate::client::cluster::first_answer;
use crate::client::maintenance::{self, Alarm, Header};
use crate::client::{Connector, Target};
use crate::output::Report;
use crate::units::hex_id;

#[derive(Debug, Clone)]
pub struct AlarmReport {
    pub endpoint: String,
    pub header: Header,
    /// The active alarms (`list`), or those disarmed (`disarm`).
    pub alarms: Vec<Alarm>,
}

/// `disarm`: deactivate every alarm; else list them.
pub async fn run(connector: &Connector, targets: &[Target], disarm: bool) -> Result<AlarmReport> {
    let (target, (header, alarms)) = first_answer(targets, |target| async move {
        if disarm {
            maintenance::disarm(connector, target).await
        } else {
            maintenance::alarms(connector, target).await
        }
    })
    .await
    .map_err(|failures| anyhow!("could not reach any endpoint: {}", failures.join("; ")))?;
    Ok(AlarmReport {
        endpoint: target.endpoint.clone(),
        header,
        alarms,
    })
}

impl Report for AlarmReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .alarms
            .iter()
            .map(|a| vec![hex_id(a.member_id), a.name().to_string()])
            .collect();
        (vec!["member id", "alarm"], rows)
    }

    fn json(&self) -> Value {
        let alarms: Vec<Value> = self
            .alarms
            .iter()
            .map(|a| json!({"memberID": a.member_id, "alarm": a.kind as i32}))
            .collect();
        let mut doc = Map::new();
        doc.insert("header".into(), self.header.to_json());
        if !alarms.is_empty() {
            doc.insert("alarms".into(), Value::Array(alarms));
        }
        doc.insert("endpoint".into(), json!(self.endpoint));
        Value::Object(doc)
    }

    fn simple(&self) -> Vec<String> {
        self.alarms
            .iter()
            .map(|a| format!("memberID:{} alarm:{}", a.member_id, a.name()))
            .collect()
    }
}
