//! AWS credentials, from the standard chain in aws-cli's order, first match wins:
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the profile `AWS_PROFILE` (else `default`) in `~/.aws/credentials` then `~/.aws/config`
//!    (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`): static keys, or `role_arn` +
//!    `web_identity_token_file`;
//! 3. web identity (IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged with STS
//!    `AssumeRoleWithWebIdentity` (`AWS_ENDPOINT_URL_STS` to point elsewhere);
//! 4. EC2 instance metadata (IMDSv2), unless `AWS_EC2_METADATA_DISABLED=true`
//!    (`AWS_EC2_METADATA_SERVICE_ENDPOINT` to point elsewhere).
//!
//! Only where the credentials came from is ever printed; the values never are.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::http::{read_body, Http};
use super::sigv4::Credentials;

const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
const STS_TIMEOUT: Duration = Duration::from_secs(30);
/// Credential and config files are small; refuse anything that is not.
const MAX_PROFILE_FILE: u64 = 1 << 20;

/// The environment variables the chain reads, captured once by the settings layer.
#[derive(Clone, Default)]
pub struct AwsEnv {
    vars: BTreeMap<String, String>,
}

/// Names only: the values include the secret key.
impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Profile settings of credential sources this chain does not follow.
const UNSUPPORTED: [&str; 5] = [
    "credential_process",
    "source_profile",
    "sso_session",
    "sso_start_url",
    "credential_source",
];

impl AwsEnv {
    pub fn from_vars(env: &[(String, String)]) -> AwsEnv {
        let vars = env
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        AwsEnv { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn home_file(&self, var: &str, default: &str) -> Option<PathBuf> {
        match self.get(var) {
            Some(p) => Some(PathBuf::from(p)),
            None => self.get("HOME").map(|h| PathBuf::from(h).join(default)),
        }
    }

    fn profile(&self) -> (String, bool) {
        match self.get("AWS_PROFILE") {
            Some(p) => (p.to_string(), true),
            None => ("default".to_string(), false),
        }
    }
}

pub struct Loaded {
    pub creds: Credentials,
    /// e.g. `environment AWS_ACCESS_KEY_ID`, `profile "backup" in /root/.aws/credentials`.
    pub from: String,
}

pub async fn load(env: &AwsEnv, http: &Http) -> Result<Loaded> {
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Loaded {
            creds: Credentials {
                access_key_id: id.to_string(),
                secret_access_key: secret.to_string(),
                session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
            },
            from: "environment AWS_ACCESS_KEY_ID".to_string(),
        });
    }
    if let Some(loaded) = from_profile(env, http).await? {
        return Ok(loaded);
    }
    if let (Some(token_file), Some(role)) = (
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) {
        let creds = web_identity(env, http, role, token_file).await?;
        return Ok(Loaded {
            creds,
            from: "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".to_string(),
        });
    }
    if !env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        if let Ok(creds) = instance_metadata(env, http).await {
            return Ok(Loaded {
                creds,
                from: "instance metadata".to_string(),
            });
        }
    }
    Err(crate::exit::Hinted {
        error: anyhow!("no AWS credentials found (environment, ~/.aws, web identity, instance metadata)"),
        hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for a timer: in its EnvironmentFile, mode 0600), or AWS_PROFILE".to_string(),
    }
    .into())
}

/// The active profile's credentials in `~/.aws/credentials` or `~/.aws/config`: static keys,
/// or a web identity; `None` when the profile has neither (or there is no profile file).
async fn from_profile(env: &AwsEnv, http: &Http) -> Result<Option<Loaded>> {
    let (profile, explicit) = env.profile();
    let files = [
        (
            env.home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            false,
        ),
        (env.home_file("AWS_CONFIG_FILE", ".aws/config"), true),
    ];
    let mut found_profile = false;
    for (path, is_config) in files.iter().filter_map(|(p, c)| Some((p.as_ref()?, *c))) {
        let Some(section) = read_section(path, &profile, is_config)? else {
            continue;
        };
        found_profile = true;
        if let (Some(id), Some(secret)) = (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        ) {
            return Ok(Some(Loaded {
                creds: Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: section.get("aws_session_token").cloned(),
                },
                from: format!("profile {profile:?} in {}", path.display()),
            }));
        }
        if let (Some(role), Some(token_file)) = (
            section.get("role_arn"),
            section.get("web_identity_token_file"),
        ) {
            let creds = web_identity(env, http, role, token_file).await?;
            return Ok(Some(Loaded {
                creds,
                from: format!("web identity of profile {profile:?}"),
            }));
        }
        if let Some(key) = UNSUPPORTED.iter().find(|k| section.contains_key(**k)) {
            return Err(crate::exit::Hinted {
                error: anyhow!(
                    "profile {profile:?} in {} gets its credentials through {key}, which etcdops does not follow (it reads static keys, web identity and instance metadata)",
                    path.display()
                ),
                hint: format!(
                    "export the profile's keys into the environment first, e.g. `eval \"$(aws configure export-credentials --profile {} --format env)\"`, or use a profile with aws_access_key_id",
                    crate::text::shell_quote(&profile)
                ),
            }
            .into());
        }
    }
    if explicit && !found_profile {
        bail!(
            "AWS_PROFILE={profile:?} names a profile that is in neither ~/.aws/credentials nor ~/.aws/config"
        );
    }
    Ok(None)
}

/// The settings (`region`, `request_checksum_calculation`, …) of the active profile in
/// `~/.aws/config`; empty when there is none.
pub fn profile_config(env: &AwsEnv) -> BTreeMap<String, String> {
    let (profile, _) = env.profile();
    env.home_file("AWS_CONFIG_FILE", ".aws/config")
        .and_then(|path| read_section(&path, &profile, true).ok().flatten())
        .unwrap_or_default()
}

/// One section of an INI-style AWS file: `[name]` in credentials, `[profile name]` (or
/// `[default]`) in config. Missing files are `None`; unreadable ones are errors.
fn read_section(
    path: &std::path::Path,
    profile: &str,
    is_config: bool,
) -> Result<Option<BTreeMap<String, String>>> {
    let text = match crate::fsutil::read_capped_text(path, MAX_PROFILE_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(parse_section(&text, profile, is_config))
}

fn parse_section(text: &str, profile: &str, is_config: bool) -> Option<BTreeMap<String, String>> {
    let wanted = if is_config && profile != "default" {
        format!("profile {profile}")
    } else {
        profile.to_string()
    };
    let mut inside = false;
    let mut found = None::<BTreeMap<String, String>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = name == wanted;
            if inside {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            if let Some(map) = found.as_mut() {
                map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    found
}

/// STS's `<ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>`.
#[derive(Deserialize)]
struct StsErrorResponse {
    #[serde(rename = "Error")]
    error: StsError,
}

#[derive(Deserialize)]
struct StsError {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Deserialize)]
struct StsResponse {
    #[serde(rename = "AssumeRoleWithWebIdentityResult")]
    result: StsResult,
}

#[derive(Deserialize)]
struct StsResult {
    #[serde(rename = "Credentials")]
    credentials: StsCredentials,
}

#[derive(Deserialize)]
struct StsCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
    #[serde(rename = "SessionToken")]
    session_token: String,
}

async fn web_identity(
    env: &AwsEnv,
    http: &Http,
    role: &str,
    token_file: &str,
) -> Result<Credentials> {
    let token = crate::fsutil::read_capped_text(std::path::Path::new(token_file), 1 << 20)
        .with_context(|| format!("reading the web identity token {token_file}"))?;
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .unwrap_or("us-east-1");
    let endpoint = env
        .get("AWS_ENDPOINT_URL_STS")
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    if endpoint.starts_with("http://") {
        eprintln!(
            "etcdops: warning: AWS_ENDPOINT_URL_STS {} is plain http: the web identity token and the temporary credentials STS answers with travel in clear",
            crate::text::escape(&endpoint)
        );
    }
    let session = env
        .get("AWS_ROLE_SESSION_NAME")
        .unwrap_or("etcdops")
        .to_string();
    let query = super::sigv4::canonical_query(&[
        (
            "Action".to_string(),
            "AssumeRoleWithWebIdentity".to_string(),
        ),
        ("Version".to_string(), "2011-06-15".to_string()),
        ("RoleArn".to_string(), role.to_string()),
        ("RoleSessionName".to_string(), session),
        ("WebIdentityToken".to_string(), token.trim().to_string()),
    ]);
    let req = http::Request::get(format!("{}/?{query}", endpoint.trim_end_matches('/')))
        .body(Full::new(Bytes::new()))
        .map_err(|e| anyhow!("building the STS request: {e}"))?;
    let resp = http
        .send(req, STS_TIMEOUT)
        .await
        .context("exchanging the web identity token with STS")?;
    let status = resp.status();
    let body = read_body(resp, 1 << 20, STS_TIMEOUT).await?;
    if !status.is_success() {
        let why = std::str::from_utf8(&body)
            .ok()
            .and_then(|t| quick_xml::de::from_str::<StsErrorResponse>(t).ok())
            .map(|e| {
                format!(
                    " {}: {}",
                    crate::text::escape(&e.error.code),
                    crate::text::escape(&e.error.message)
                )
            })
            .unwrap_or_default();
        bail!(
            "STS refused the web identity token for role {} (HTTP {}{why}); check the role's trust policy and that the token file is current",
            crate::text::escape(role),
            status.as_u16()
        );
    }
    let text = String::from_utf8_lossy(&body);
    let parsed: StsResponse = quick_xml::de::from_str(&text)
        .map_err(|e| anyhow!("STS answered with unexpected XML: {e}"))?;
    let c = parsed.result.credentials;
    Ok(Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.session_token).filter(|t| !t.is_empty()),
    })
}

#[derive(Deserialize)]
struct ImdsCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
    #[serde(rename = "Token")]
    token: String,
}

async fn instance_metadata(env: &AwsEnv, http: &Http) -> Result<Credentials> {
    let base = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or("http://169.254.169.254")
        .trim_end_matches('/')
        .to_string();
    let req = http::Request::put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "300")
        .body(Full::new(Bytes::new()))?;
    let token = read_body(http.send(req, IMDS_TIMEOUT).await?, 4096, IMDS_TIMEOUT).await?;
    let token = String::from_utf8(token)?;
    let get = |path: String| {
        http::Request::get(format!("{base}{path}"))
            .header("x-aws-ec2-metadata-token", token.trim())
            .body(Full::new(Bytes::new()))
    };
    let base_path = "/latest/meta-data/iam/security-credentials/";
    let role = read_body(
        http.send(get(base_path.to_string())?, IMDS_TIMEOUT).await?,
        4096,
        IMDS_TIMEOUT,
    )
    .await?;
    let role = String::from_utf8(role)?;
    let role = role.lines().next().unwrap_or("").trim().to_string();
    if role.is_empty() {
        bail!("instance metadata lists no role");
    }
    let body = read_body(
        http.send(get(format!("{base_path}{role}"))?, IMDS_TIMEOUT)
            .await?,
        1 << 16,
        IMDS_TIMEOUT,
    )
    .await?;
    let c: ImdsCredentials = serde_json::from_slice(&body)?;
    Ok(Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.token).filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_in_both_files() {
        let creds = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n[backup]\naws_access_key_id=B\naws_secret_access_key=T\naws_session_token = X\n";
        assert_eq!(
            parse_section(creds, "backup", false).unwrap()["aws_session_token"],
            "X"
        );
        assert_eq!(
            parse_section(creds, "default", false).unwrap()["aws_access_key_id"],
            "A"
        );
        assert!(parse_section(creds, "nope", false).is_none());
        let config = "[default]\nregion = eu-west-1\n[profile backup]\nregion=us-west-2\n";
        assert_eq!(
            parse_section(config, "backup", true).unwrap()["region"],
            "us-west-2"
        );
        assert_eq!(
            parse_section(config, "default", true).unwrap()["region"],
            "eu-west-1"
        );
        // In config, a bare [backup] is not the profile "backup".
        assert!(parse_section("[backup]\nregion=x\n", "backup", true).is_none());
    }

    #[test]
    fn sts_answer_parses() {
        let xml = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-11-28T06:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let r: StsResponse = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.result.credentials.access_key_id, "ASIA");
        assert_eq!(r.result.credentials.session_token, "t");
    }

    #[test]
    fn sts_refusal_parses_and_the_environment_hides_its_values() {
        let xml = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token expired</Message></Error><RequestId>1</RequestId></ErrorResponse>";
        let r: StsErrorResponse = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.error.code, "InvalidIdentityToken");
        assert_eq!(r.error.message, "Token expired");
        let env = AwsEnv::from_vars(&[(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "very-secret".to_string(),
        )]);
        let shown = format!("{env:?}");
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("very-secret"));
    }

    #[tokio::test]
    async fn a_profile_with_an_unsupported_source_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[profile sso]\nsso_session = corp\nsso_account_id = 1\n",
        )
        .unwrap();
        let env = AwsEnv::from_vars(&[
            ("AWS_PROFILE".to_string(), "sso".to_string()),
            ("AWS_CONFIG_FILE".to_string(), config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                "/nonexistent".to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ]);
        let http = Http::new(crate::tls::https_config(None, false).unwrap());
        let err = match load(&env, &http).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("loaded credentials from an SSO profile"),
        };
        assert!(err.contains("sso_session"), "{err}");
    }
}
