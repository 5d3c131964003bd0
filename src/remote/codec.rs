//! The byte pipeline between a plain snapshot and what is stored: compress with zstd, then
//! encrypt with age, hashing both ends. Standard formats only: `zstd -d` and the stock `age -d`
//! open what [`Encoder`] writes; [`decoder`] recognises each layer by its magic bytes, not by
//! the file name.
//!
//! ```text
//! plain (db + sha256 trailer) ─sha256─▶ zstd frame ─▶ age v1 (X25519 / ssh-ed25519 / ssh-rsa) ─sha256─▶ object
//! ```

use std::io::{self, BufRead, Read, Write};

use crate::buf::AlignedReader;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// The first bytes of every age v1 file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";
/// A zstd frame's magic number, little-endian on disk.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Identity and recipient files are small.
const MAX_KEY_FILE: u64 = 1 << 20;

/// One age recipient and the text it was given as (a public key: safe to print and store).
pub struct Recipient {
    pub text: String,
    key: Box<dyn age::Recipient + Send + Sync>,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `--encrypt-to`: an `age1…` key, an `ssh-ed25519 …`/`ssh-rsa …` public key, or a file holding
/// such lines (as `age -R`).
pub fn parse_recipients(arg: &str) -> Result<Vec<Recipient>> {
    let arg = arg.trim();
    if arg.starts_with("age1") || arg.starts_with("ssh-") {
        return Ok(vec![parse_recipient(arg)?]);
    }
    let path = Path::new(arg);
    if !path.is_file() {
        bail!("--encrypt-to {arg:?} is neither an age public key (age1…), an ssh-ed25519/ssh-rsa public key, nor a file of them");
    }
    let text = read_key_file(path)?;
    let found: Vec<Recipient> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_recipient)
        .collect::<Result<_>>()
        .with_context(|| format!("recipients file {}", path.display()))?;
    if found.is_empty() {
        bail!("recipients file {} holds no recipient", path.display());
    }
    Ok(found)
}

fn parse_recipient(text: &str) -> Result<Recipient> {
    let key: Box<dyn age::Recipient + Send + Sync> = if text.starts_with("age1") {
        Box::new(
            text.parse::<age::x25519::Recipient>()
                .map_err(|e| anyhow!("{text:?} is not a valid age public key: {e}"))?,
        )
    } else {
        Box::new(text.parse::<age::ssh::Recipient>().map_err(|_| {
            anyhow!(
                "{:?} is not a supported ssh public key (ssh-ed25519 or ssh-rsa)",
                short(text)
            )
        })?)
    };
    Ok(Recipient {
        text: text.to_string(),
        key,
    })
}

fn short(s: &str) -> String {
    let s: String = s.chars().take(40).collect();
    crate::text::escape(&s)
}

fn read_key_file(path: &Path) -> Result<String> {
    crate::fsutil::read_capped_text(path, MAX_KEY_FILE)
        .with_context(|| format!("reading {} (it must be a text key file)", path.display()))
}

/// Secret keys to decrypt with, from `--identity` files: age identity files
/// (`AGE-SECRET-KEY-1…`) or unencrypted OpenSSH ed25519/RSA private keys. Never printed.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity>>,
    files: Vec<String>,
}

impl Identities {
    pub fn none() -> Identities {
        Identities {
            keys: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn load(paths: &[std::path::PathBuf]) -> Result<Identities> {
        let mut ids = Identities::none();
        for path in paths {
            let text = read_key_file(path)?;
            let name = path.display().to_string();
            if text.contains("AGE-SECRET-KEY-") {
                let file = age::IdentityFile::from_buffer(text.as_bytes())
                    .map_err(|_| anyhow!("--identity {name}: not a valid age identity file"))?;
                let keys = file
                    .into_identities()
                    .map_err(|_| anyhow!("--identity {name}: holds an identity etcdops cannot use (plugins are not supported)"))?;
                ids.keys.extend(keys);
            } else if text.contains("PRIVATE KEY-----") {
                match age::ssh::Identity::from_buffer(text.as_bytes(), Some(name.clone())) {
                    Ok(age::ssh::Identity::Unencrypted(k)) => {
                        ids.keys.push(Box::new(age::ssh::Identity::Unencrypted(k)))
                    }
                    Ok(age::ssh::Identity::Encrypted(_)) => bail!(
                        "--identity {name}: the ssh key is passphrase-protected; etcdops runs unattended and reads only unencrypted keys (keep it 0600, or use an age identity)"
                    ),
                    _ => bail!("--identity {name}: an ssh key type age cannot decrypt with (use ssh-ed25519 or ssh-rsa)"),
                }
            } else {
                bail!("--identity {name}: neither an age identity file (AGE-SECRET-KEY-1…) nor an OpenSSH private key");
            }
            ids.files.push(name);
        }
        Ok(ids)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What went through an encoder or decoder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub plain_sha256: [u8; 32],
    pub plain_len: u64,
    pub object_sha256: [u8; 32],
    pub object_len: u64,
}

/// How to encode: zstd level (if any), age recipients (if any).
#[derive(Debug, Default)]
pub struct Encoding {
    pub zstd_level: Option<i32>,
    pub recipients: Vec<Recipient>,
}

impl Encoding {
    /// The suffix the stored name gets after `.db`.
    pub fn suffix(&self) -> &'static str {
        match (self.zstd_level.is_some(), !self.recipients.is_empty()) {
            (false, false) => "",
            (true, false) => ".zst",
            (false, true) => ".age",
            (true, true) => ".zst.age",
        }
    }

    pub fn is_plain(&self) -> bool {
        self.zstd_level.is_none() && self.recipients.is_empty()
    }
}

/// Hashes and counts what reaches the sink (not used when the object is the plain file, whose
/// hash the caller has already).
struct Counting<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Stage<W: Write> {
    Plain(W),
    Zstd(zstd::stream::write::Encoder<'static, Counting<W>>),
    Age(age::stream::StreamWriter<Counting<W>>),
    ZstdAge(zstd::stream::write::Encoder<'static, age::stream::StreamWriter<Counting<W>>>),
}

/// A writer that takes the plain snapshot and writes the stored object into `W`. The plain
/// bytes are not hashed here: the caller hashes them once (the etcd trailer check does).
pub struct Encoder<W: Write> {
    stage: Stage<W>,
}

impl<W: Write> Encoder<W> {
    pub fn new(inner: W, encoding: &Encoding) -> Result<Encoder<W>> {
        let counting = Counting {
            inner,
            hasher: Sha256::new(),
            len: 0,
        };
        let age_writer = |w: Counting<W>| -> Result<age::stream::StreamWriter<Counting<W>>> {
            let encryptor = age::Encryptor::with_recipients(
                encoding
                    .recipients
                    .iter()
                    .map(|r| r.key.as_ref() as &dyn age::Recipient),
            )
            .map_err(|e| anyhow!("setting up encryption: {e}"))?;
            encryptor.wrap_output(w).context("writing the age header")
        };
        let stage = match (encoding.zstd_level, encoding.recipients.is_empty()) {
            (None, true) => Stage::Plain(counting.inner),
            (Some(level), true) => Stage::Zstd(zstd_writer(counting, level)?),
            (None, false) => Stage::Age(age_writer(counting)?),
            (Some(level), false) => Stage::ZstdAge(zstd_writer(age_writer(counting)?, level)?),
        };
        Ok(Encoder { stage })
    }

    /// Close every layer (zstd frame end, age final chunk) and return the sink with the
    /// digests; `plain_sha256` and `plain_len` describe what was written into the encoder.
    pub fn finish(self, plain_sha256: [u8; 32], plain_len: u64) -> io::Result<(W, Digests)> {
        let counting = match self.stage {
            Stage::Plain(w) => {
                let digests = Digests {
                    plain_sha256,
                    plain_len,
                    object_sha256: plain_sha256,
                    object_len: plain_len,
                };
                return Ok((w, digests));
            }
            Stage::Zstd(z) => z.finish()?,
            Stage::Age(a) => a.finish()?,
            Stage::ZstdAge(z) => z.finish()?.finish()?,
        };
        let digests = Digests {
            plain_sha256,
            plain_len,
            object_sha256: counting.hasher.finalize().into(),
            object_len: counting.len,
        };
        Ok((counting.inner, digests))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stage {
            Stage::Plain(w) => w.write(buf),
            Stage::Zstd(w) => w.write(buf),
            Stage::Age(w) => w.write(buf),
            Stage::ZstdAge(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(w) => w.flush(),
            Stage::Zstd(w) => w.flush(),
            Stage::Age(w) => w.flush(),
            Stage::ZstdAge(w) => w.flush(),
        }
    }
}

/// The object's hash and length, filled in as the decoder reads.
#[derive(Clone, Default)]
pub struct ObjectHash(Arc<Mutex<(Sha256, u64)>>);

impl ObjectHash {
    pub fn finish(&self) -> ([u8; 32], u64) {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (guard.0.clone().finalize().into(), guard.1)
    }
}

struct HashingReader<R> {
    inner: R,
    hash: ObjectHash,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut guard = self.hash.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.update(&buf[..n]);
        guard.1 += n as u64;
        Ok(n)
    }
}

/// Which layers a stored object had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layers {
    pub encrypted: bool,
    pub compressed: bool,
}

/// Wrap `raw` (the stored object) in the layers it starts with; the result reads the plain
/// snapshot. `what` names the object in errors.
pub fn decoder<R: Read + Send + 'static>(
    raw: R,
    identities: &Identities,
    what: &str,
) -> Result<(Box<dyn Read + Send>, Layers, ObjectHash)> {
    let hash = ObjectHash::default();
    let hashing = HashingReader {
        inner: raw,
        hash: hash.clone(),
    };
    let (plain, layers) = unwrap_layers(hashing, identities, what)?;
    Ok((plain, layers, hash))
}

/// [`decoder`] of an object whose sha256 was already checked: the layers only.
pub fn unwrap_layers<R: Read + Send + 'static>(
    raw: R,
    identities: &Identities,
    what: &str,
) -> Result<(Box<dyn Read + Send>, Layers)> {
    let (head, outer) = peek(raw, AGE_MAGIC.len()).with_context(|| format!("reading {what}"))?;
    let mut outer = AlignedReader::with_capacity(1 << 20, outer);
    let mut layers = Layers::default();
    let inner: Box<dyn Read + Send> = if head.starts_with(AGE_MAGIC) {
        layers.encrypted = true;
        if identities.is_empty() {
            return Err(crate::exit::Hinted {
                error: anyhow!("{what} is encrypted with age"),
                hint: "pass the secret key that matches one of its recipients with --identity FILE"
                    .to_string(),
            }
            .into());
        }
        let header = age_header(&mut outer).map_err(|e| anyhow!("{what}: {e}"))?;
        let decryptor = age::Decryptor::new_buffered(io::Cursor::new(header).chain(outer))
            .map_err(|e| anyhow!("{what}: not a readable age file: {e}"))?;
        let reader = decryptor
            .decrypt(
                identities
                    .keys
                    .iter()
                    .map(|k| k.as_ref() as &dyn age::Identity),
            )
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => anyhow!(
                    "{what}: none of the --identity keys ({}) is a recipient of this snapshot",
                    identities.files.join(", ")
                ),
                other => anyhow!("{what}: cannot decrypt: {other}"),
            })?;
        Box::new(reader)
    } else {
        Box::new(outer)
    };
    let (head, inner) = peek(inner, ZSTD_MAGIC.len()).map_err(|e| decode_error(e, what))?;
    let inner = AlignedReader::with_capacity(1 << 20, inner);
    let plain: Box<dyn Read + Send> = if head.starts_with(&ZSTD_MAGIC) {
        layers.compressed = true;
        let mut z = zstd::stream::read::Decoder::with_buffer(inner)
            .with_context(|| format!("{what}: setting up zstd"))?;
        // A snapshot is at most a few GiB; a window past 128 MiB is not ours.
        z.window_log_max(27)
            .with_context(|| format!("{what}: setting up zstd"))?;
        Box::new(DecodeErrors {
            inner: z,
            what: what.to_string(),
        })
    } else {
        Box::new(DecodeErrors {
            inner,
            what: what.to_string(),
        })
    };
    Ok((plain, layers))
}

/// The most recipients a save encrypts to.
pub const MAX_RECIPIENTS: usize = 256;
/// An age header holds one stanza per recipient (a few hundred bytes each) and may hold a
/// random "grease" stanza: more than this is not ours, and the age crate's header parser
/// takes time quadratic in the stanza count (9,001 stanzas: 37 s).
pub const MAX_AGE_STANZAS: usize = 2 * MAX_RECIPIENTS;
pub const MAX_AGE_HEADER: usize = 1 << 20;

/// Read an age header (up to and including its `---` MAC line), refusing more than
/// [`MAX_AGE_STANZAS`] stanzas or [`MAX_AGE_HEADER`] bytes before anything parses it.
fn age_header(r: &mut impl io::BufRead) -> io::Result<Vec<u8>> {
    let mut header = Vec::new();
    let mut stanzas = 0;
    loop {
        let start = header.len();
        let room = (MAX_AGE_HEADER + 1).saturating_sub(start) as u64;
        let n = r.by_ref().take(room).read_until(b'\n', &mut header)?;
        let line = &header[start..];
        if n == 0 || line.starts_with(b"---") {
            return Ok(header);
        }
        if header.len() > MAX_AGE_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the age header is larger than {MAX_AGE_HEADER} bytes: not a snapshot etcdops wrote"),
            ));
        }
        if line.starts_with(b"-> ") {
            stanzas += 1;
            if stanzas > MAX_AGE_STANZAS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the age header has more than {MAX_AGE_STANZAS} recipient stanzas: not a snapshot etcdops wrote"),
                ));
            }
        }
    }
}

/// A reader whose first bytes were peeked at, yielding them again.
pub type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// The first `n` bytes of `r` (fewer only at its end), and a reader that still yields them: a
/// layer's magic is recognised however the transport cut the stream into frames.
pub fn peek<R: Read>(mut r: R, n: usize) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head.clone(), io::Cursor::new(head).chain(r)))
}

/// Name the object and the layer in read errors (age reports a bad chunk as InvalidData).
struct DecodeErrors<R> {
    inner: R,
    what: String,
}

impl<R: Read> Read for DecodeErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), decode_error(e, &self.what).to_string()))
    }
}

/// The snapshot's bytes are wrong (truncated, corrupted, not what its sidecar says), as opposed
/// to not being readable at all: `verify` reports it as a failed check, not an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadContent(pub String);

fn decode_error(e: io::Error, what: &str) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => BadContent(format!(
            "{what} is truncated (it ends inside a compressed or encrypted block)"
        ))
        .into(),
        io::ErrorKind::InvalidData => BadContent(format!("{what} is corrupted: {e}")).into(),
        _ => anyhow!("reading {what}: {e}"),
    }
}

fn zstd_writer<W: Write>(w: W, level: i32) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let mut z =
        zstd::stream::write::Encoder::new(w, level).context("setting up zstd compression")?;
    // Frame checksums let `zstd -t` and our decoder catch corruption.
    z.include_checksum(true)
        .context("setting up zstd compression")?;
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (1 + self.1 % 3).min(buf.len()).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    fn roundtrip(encoding: &Encoding, ids: &Identities, data: &[u8]) -> (Vec<u8>, Layers, Digests) {
        let mut enc = Encoder::new(Vec::new(), encoding).unwrap();
        enc.write_all(data).unwrap();
        let (object, digests) = enc
            .finish(Sha256::digest(data).into(), data.len() as u64)
            .unwrap();
        assert_eq!(digests.object_len, object.len() as u64);
        assert_eq!(
            digests.object_sha256,
            <[u8; 32]>::from(Sha256::digest(&object))
        );
        assert_eq!(digests.plain_sha256, <[u8; 32]>::from(Sha256::digest(data)));
        // Served in frames of 1 to 3 bytes, as a slow transport may: the magic is still seen.
        let (mut r, layers, hash) = decoder(Trickle(object.clone(), 0), ids, "t").unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(hash.finish(), (digests.object_sha256, digests.object_len));
        (back, layers, digests)
    }

    #[test]
    fn every_combination_round_trips() {
        let secret = age::x25519::Identity::generate();
        let public = secret.to_public().to_string();
        let ids = Identities {
            keys: vec![Box::new(secret)],
            files: vec!["k".into()],
        };
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for (zstd_level, encrypt) in [
            (None, false),
            (Some(3), false),
            (None, true),
            (Some(1), true),
        ] {
            let encoding = Encoding {
                zstd_level,
                recipients: if encrypt {
                    parse_recipients(&public).unwrap()
                } else {
                    vec![]
                },
            };
            let (back, layers, _) = roundtrip(&encoding, &ids, &data);
            assert_eq!(back, data);
            assert_eq!(
                layers,
                Layers {
                    encrypted: encrypt,
                    compressed: zstd_level.is_some()
                }
            );
        }
    }

    #[test]
    fn wrong_identity_truncation_and_corruption_are_errors() {
        let secret = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let encoding = Encoding {
            zstd_level: Some(3),
            recipients: parse_recipients(&secret.to_public().to_string()).unwrap(),
        };
        let mut enc = Encoder::new(Vec::new(), &encoding).unwrap();
        // Incompressible bytes, so that the object is long enough to cut into its body.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        enc.write_all(&noise).unwrap();
        let (object, _) = enc.finish([0; 32], 0).unwrap();
        let wrong = Identities {
            keys: vec![Box::new(other)],
            files: vec!["other.key".into()],
        };
        let err = decoder(std::io::Cursor::new(object.clone()), &wrong, "obj")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("none of the --identity keys (other.key)"),
            "{err}"
        );
        let err = decoder(
            std::io::Cursor::new(object.clone()),
            &Identities::none(),
            "obj",
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("encrypted with age"), "{err}");
        let right = Identities {
            keys: vec![Box::new(secret)],
            files: vec!["k".into()],
        };
        for bad in [object[..object.len() - 100].to_vec(), {
            let mut o = object.clone();
            let i = o.len() - 50;
            o[i] ^= 1;
            o
        }] {
            let (mut r, _, _) = decoder(std::io::Cursor::new(bad), &right, "obj").unwrap();
            let mut sink = Vec::new();
            assert!(r.read_to_end(&mut sink).is_err());
        }
    }

    /// 9,001 recipient stanzas took the age crate 37 s to parse; the header is refused at the
    /// 513th, before any parsing. A file encrypted to the most recipients a save allows still
    /// decrypts.
    #[test]
    fn an_age_header_with_thousands_of_stanzas_is_refused_at_once() {
        let secret = age::x25519::Identity::generate();
        let ids = Identities {
            keys: vec![Box::new(secret.clone())],
            files: vec!["k".into()],
        };
        let stanza = format!("-> X25519 {}\n{}\n", "A".repeat(43), "B".repeat(43));
        let bomb = format!(
            "age-encryption.org/v1\n{}--- {}\n",
            stanza.repeat(9001),
            "C".repeat(43)
        );
        let start = std::time::Instant::now();
        let err = decoder(io::Cursor::new(bomb.into_bytes()), &ids, "o")
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("more than 512 recipient stanzas"),
            "{err:#}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // 256 real recipients, ours among them: decrypts.
        let mut recipients: Vec<Box<dyn age::Recipient + Send + Sync>> = (0..255)
            .map(|_| Box::new(age::x25519::Identity::generate().to_public()) as _)
            .collect();
        recipients.push(Box::new(secret.to_public()));
        let encryptor = age::Encryptor::with_recipients(
            recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).unwrap();
        w.write_all(b"plain").unwrap();
        w.finish().unwrap();
        let (mut plain, _, _) = decoder(io::Cursor::new(out), &ids, "o").unwrap();
        let mut got = Vec::new();
        plain.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"plain");
    }

    #[test]
    fn recipients_are_checked() {
        assert!(parse_recipients("age1notakey").is_err());
        assert!(parse_recipients("ssh-dss AAAA").is_err());
        let err = parse_recipients("/nonexistent/file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither an age public key"), "{err}");
    }
}
