//! The cache store: a dumb, content-addressed directory.
//!
//! ```text
//! cache/
//!   objects/ab/<blake3>      immutable output files, read-only, named by the hash of their bytes
//!   runs/ab/<key>.json       one run record per stage key: outputs → object hashes, metrics, times
//!   index/<pipeline>.json    last key of each instance of a pipeline (for `status` reasons)
//!   index/<pipeline>.lookup  what a no-op rerun needs of those keys' records (see `lookup`)
//!   locks/<key>.lock         per-key advisory locks (flock): two processes never compute one key
//!   logs/<key>/              what runs of the key printed (command output, Slurm job logs)
//!   tmp/                     work directories and files being written
//!   quarantine/              objects whose bytes no longer match their hash
//!   filememo.json            (path, size, mtime, inode) → content hash of external files
//! ```
//!
//! Every write goes to `tmp/`, is fsynced and renamed into place, and a run record is written
//! only after all its objects exist: a crash or `kill -9` leaves at worst garbage in `tmp/`,
//! never an entry a later run would trust. A miss is `Ok(None)`; what a key means lives in the
//! layers above.

use crate::diag::{Error, Result};
use crate::key::KeyInput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A stored output: its content hash and what the record saw of the file.
pub struct ObjectRef {
    /// blake3 of its bytes: its name in `objects/`.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns) of the object when the record was written: a changed mtime
    /// makes the next lookup rehash the object before trusting it.
    pub mtime_ns: u128,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// A run record: what one stage instance produced, and how.
pub struct Record {
    /// The key.
    pub key: String,
    /// The instance that ran it (for messages).
    pub instance: String,
    /// What the key is made of.
    pub key_input: KeyInput,
    /// Output name → object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// What the stage returned besides files.
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// Wall time.
    pub seconds: f64,
    /// Start (Unix seconds).
    pub started_unix: f64,
    /// End (Unix seconds).
    pub finished_unix: f64,
    /// The `repro` version that ran it.
    pub tool_version: String,
    /// Where and how it ran: host, CPU features the kernels used, threads.
    pub environment: BTreeMap<String, String>,
}

/// The cache directory.
pub struct Store {
    /// Its root.
    pub root: PathBuf,
    memo: Mutex<Option<BTreeMap<String, FileMemo>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileMemo {
    size: u64,
    mtime_ns: u128,
    inode: u64,
    hash: String,
}

/// Now, in Unix seconds.
pub fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub(crate) fn mtime_ns(m: &fs::Metadata) -> u128 {
    m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(unix)]
pub(crate) fn inode(m: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}
#[cfg(not(unix))]
pub(crate) fn inode(_m: &fs::Metadata) -> u64 {
    0
}

/// Whether `s` is a blake3 hex digest as this store names keys and objects: 64 lowercase hex
/// digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The entries of a directory that are not symbolic links (directories only, or files only).
fn real_entries(dir: &Path, dirs: bool) -> Vec<PathBuf> {
    if fs::symlink_metadata(dir).map(|m| m.file_type().is_symlink()).unwrap_or(true) {
        return Vec::new();
    }
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| if dirs { t.is_dir() } else { t.is_file() }))
        .map(|e| e.path())
        .collect()
}

/// blake3 of a file's bytes: memory-mapped and multi-threaded for large files.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    let len = fs::metadata(path)?.len();
    if len > 1 << 20 {
        h.update_mmap_rayon(path)?;
    } else {
        h.update(&fs::read(path)?);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// A held per-key lock; released on drop (and by the OS if the process dies).
pub struct KeyLock {
    file: fs::File,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Store {
    /// Opens (creating) a cache directory.
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["objects", "runs", "index", "locks", "tmp", "quarantine"] {
            fs::create_dir_all(root.join(d))
                .map_err(|e| Error::io(format!("cannot create cache directory {}", root.join(d).display()), e))?;
        }
        Ok(Store { root: root.to_path_buf(), memo: Mutex::new(None) })
    }

    /// Where the object of a hash lives.
    pub fn object_path(&self, hash: &str) -> PathBuf {
        self.root.join("objects").join(&hash[..2]).join(hash)
    }

    pub(crate) fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("runs").join(&key[..2]).join(format!("{key}.json"))
    }

    /// A fresh temporary path inside the store (same filesystem, so renames are atomic).
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}-{}-{}-{n}", std::process::id(), now_unix() as u64))
    }

    /// Writes bytes atomically into the cache: temp file in `tmp/`, fsync, rename, fsync of
    /// the directory.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        write_via(&self.tmp_path("write"), dest, bytes)
    }

    /// Moves a finished output file into the object store; returns its reference.
    pub fn ingest(&self, file: &Path) -> Result<ObjectRef> {
        let ctx = |e: std::io::Error| Error::io(format!("cannot store {}", file.display()), e);
        let f = fs::File::open(file).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
        drop(f);
        let hash = hash_file(file).map_err(ctx)?;
        let dest = self.object_path(&hash);
        let meta = match fs::metadata(&dest) {
            Ok(m) if m.len() == fs::metadata(file).map_err(ctx)?.len() => {
                let _ = fs::remove_file(file);
                m
            }
            _ => {
                fs::create_dir_all(dest.parent().unwrap()).map_err(ctx)?;
                let mut perm = fs::metadata(file).map_err(ctx)?.permissions();
                perm.set_readonly(true);
                fs::set_permissions(file, perm).map_err(ctx)?;
                fs::rename(file, &dest).map_err(ctx)?;
                fs::metadata(&dest).map_err(ctx)?
            }
        };
        Ok(ObjectRef { hash, size: meta.len(), mtime_ns: mtime_ns(&meta) })
    }

    /// Size, mtime and inode of a file. (Stats relative to an open descriptor of the shard
    /// directory were measured no faster on 2 threads: the descriptor's reference count is
    /// shared, #19.)
    pub(crate) fn file_id(path: &Path) -> Option<crate::lookup::FileId> {
        let m = fs::metadata(path).ok()?;
        Some(crate::lookup::FileId { size: m.len(), mtime_ns: mtime_ns(&m), inode: inode(&m) })
    }

    /// Is this object present and unchanged? Size and mtime are checked on every lookup; when
    /// the mtime moved, the bytes are rehashed, and a mismatch quarantines the object.
    pub fn object_ok(&self, r: &ObjectRef) -> bool {
        let p = self.object_path(&r.hash);
        let Some(m) = Store::file_id(&p) else { return false };
        if m.size != r.size {
            self.quarantine(&r.hash, "size changed");
            return false;
        }
        if m.mtime_ns == r.mtime_ns {
            return true;
        }
        match hash_file(&p) {
            Ok(h) if h == r.hash => true,
            _ => {
                self.quarantine(&r.hash, "content does not match its hash");
                false
            }
        }
    }

    /// Rehashes an object fully (before a stage reads it).
    pub fn verify_object(&self, hash: &str) -> bool {
        match hash_file(&self.object_path(hash)) {
            Ok(h) if h == hash => true,
            Ok(_) => {
                self.quarantine(hash, "content does not match its hash");
                false
            }
            Err(_) => false,
        }
    }

    /// Moves a corrupt object to `quarantine/` and logs why.
    pub fn quarantine(&self, hash: &str, why: &str) {
        let src = self.object_path(hash);
        if src.exists() {
            let dest = self.root.join("quarantine").join(format!("{hash}-{}", now_unix() as u64));
            if fs::rename(&src, &dest).is_ok() {
                tracing::warn!(object = hash, reason = why, "corrupt object quarantined; it will be recomputed");
            }
        }
    }

    /// The record of `key` if it exists and every output object is intact.
    ///
    /// A record that lacks one of the `outputs` its stage declares now (a stage whose outputs
    /// changed without a VERSION bump) is no hit either: it could not feed its consumers.
    pub fn lookup(&self, key: &str, outputs: &[String]) -> Option<Record> {
        let rec = self.read_record(key)?;
        let complete = outputs.iter().all(|o| rec.outputs.contains_key(o));
        (complete && rec.outputs.values().all(|o| self.object_ok(o))).then_some(rec)
    }

    /// The record of a key, without checking its objects. A record that is not what this
    /// store writes (another key, an object name that is not a blake3 hash, e.g. a crafted
    /// `"hash": "../../x"`) is never returned: its hashes would become paths.
    pub fn read_record(&self, key: &str) -> Option<Record> {
        if !is_hash(key) {
            return None;
        }
        let bytes = fs::read(self.record_path(key)).ok()?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
        if rec.key != key || !rec.outputs.values().all(|o| is_hash(&o.hash)) {
            tracing::warn!(key, "ignoring a run record that does not match its key or names invalid objects");
            return None;
        }
        Some(rec)
    }

    /// Writes a record atomically (after its objects exist).
    pub fn write_record(&self, rec: &Record) -> Result<()> {
        let mut s = serde_json::to_string_pretty(rec).expect("record serializes");
        s.push('\n');
        self.write_atomic(&self.record_path(&rec.key), s.as_bytes())
    }

    /// Removes a record (gc).
    /// Whether it was removed.
    pub fn remove_record(&self, key: &str) -> bool {
        is_hash(key) && fs::remove_file(self.record_path(key)).is_ok()
    }

    /// Takes the per-key lock, calling `waiting` once if another process holds it.
    pub fn lock(&self, key: &str, waiting: impl FnOnce()) -> Result<KeyLock> {
        let p = self.root.join("locks").join(format!("{key}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(format!("cannot open lock {}", p.display()), e))?;
        if file.try_lock().is_err() {
            waiting();
            file.lock().map_err(|e| Error::io(format!("cannot lock {}", p.display()), e))?;
        }
        Ok(KeyLock { file })
    }

    /// Checks that advisory locks work where the cache lives (what a cache shared by several
    /// hosts needs: flock over NFSv4, Lustre with `flock`, …): two open file descriptions of one
    /// file must not both hold an exclusive lock. A filesystem where the second lock succeeds,
    /// or where locking fails, is refused with the reason; a read-only cache is not checked.
    pub fn check_locks(&self) -> Result<()> {
        let p = self.root.join("locks").join(".probe");
        let open = || fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p);
        let (Ok(a), Ok(b)) = (open(), open()) else { return Ok(()) };
        let refuse = |why: String| {
            Err(Error::Usage(format!(
                "the cache {} cannot be shared across hosts: {why}. Put it on a filesystem with working flock (local disk, NFSv4, Lustre mounted with -o flock) or pass --cache-dir",
                self.root.display()
            )))
        };
        if let Err(e) = a.try_lock() {
            return refuse(format!("taking a lock failed ({e})"));
        }
        let second = b.try_lock();
        let _ = a.unlock();
        if second.is_ok() {
            let _ = b.unlock();
            return refuse("two exclusive locks on one file both succeeded".into());
        }
        Ok(())
    }

    /// Whether some process (this one included) holds the lock of `key` now.
    pub fn is_locked(&self, key: &str) -> bool {
        let p = self.root.join("locks").join(format!("{key}.lock"));
        let Ok(file) = fs::OpenOptions::new().write(true).open(&p) else { return false };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }

    /// Every file under `runs/`, whatever its name or content (for `verify`).
    pub fn record_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> =
            real_entries(&self.root.join("runs"), true).iter().flat_map(|d| real_entries(d, false)).collect();
        out.sort();
        out
    }

    /// Content hash of a file outside the store, memoized on (path, size, mtime, inode).
    pub fn hash_external(&self, path: &Path) -> std::io::Result<String> {
        let meta = fs::metadata(path)?;
        let abs = path.canonicalize()?.display().to_string();
        let memo_path = self.root.join("filememo.json");
        let mut guard = self.memo.lock().unwrap();
        let memo = guard.get_or_insert_with(|| {
            fs::read(&memo_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
        });
        let (size, mt, ino) = (meta.len(), mtime_ns(&meta), inode(&meta));
        if let Some(m) = memo.get(&abs) {
            if m.size == size && m.mtime_ns == mt && m.inode == ino {
                return Ok(m.hash.clone());
            }
        }
        let hash = hash_file(path)?;
        memo.insert(abs, FileMemo { size, mtime_ns: mt, inode: ino, hash: hash.clone() });
        let bytes = serde_json::to_vec(&*memo).unwrap_or_default();
        drop(guard);
        let _ = self.write_atomic(&memo_path, &bytes);
        Ok(hash)
    }

    /// Where a pipeline's index lives.
    pub fn index_path(&self, pipeline: &Path) -> PathBuf {
        let abs = pipeline.canonicalize().unwrap_or_else(|_| pipeline.to_path_buf());
        let h = blake3::hash(abs.display().to_string().as_bytes()).to_hex();
        self.root.join("index").join(format!("{}.json", &h[..16]))
    }

    /// The last key of each instance of a pipeline.
    pub fn read_index(&self, pipeline: &Path) -> BTreeMap<String, KeyInput> {
        fs::read(self.index_path(pipeline)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Merges `entries` into a pipeline's index; writes nothing when every entry is already
    /// there as it is (a no-op rerun).
    pub fn write_index(&self, pipeline: &Path, entries: &BTreeMap<String, KeyInput>) -> Result<()> {
        let mut idx = self.read_index(pipeline);
        if entries.iter().all(|(k, v)| idx.get(k) == Some(v)) {
            return Ok(());
        }
        idx.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.write_atomic(&self.index_path(pipeline), &serde_json::to_vec(&idx).unwrap())
    }

    /// Every object file: (hash, path). Symbolic links (which this store never makes) are
    /// skipped, at both levels, so nothing outside the store is ever listed for deletion.
    pub fn objects(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for d in real_entries(&self.root.join("objects"), true) {
            for f in real_entries(&d, false) {
                let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                if is_hash(&name) {
                    out.push((name, f));
                }
            }
        }
        out.sort();
        out
    }

    /// Every run record key.
    pub fn record_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in real_entries(&self.root.join("runs"), true) {
            for f in real_entries(&d, false) {
                let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                if let Some(k) = name.strip_suffix(".json").filter(|k| is_hash(k)) {
                    out.push(k.to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Removes leftovers of crashed runs in tmp/ older than an hour; never through a symbolic
    /// link (a linked `tmp/` or entry is left alone).
    pub fn clean_tmp(&self) {
        let tmp = self.root.join("tmp");
        if fs::symlink_metadata(&tmp).map(|m| m.file_type().is_symlink()).unwrap_or(true) {
            return;
        }
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                continue;
            }
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 3600);
            // A stage may run for more than an hour: its work directory is kept while the
            // key's lock is held (by this or another process).
            let name = e.file_name().to_string_lossy().to_string();
            let busy =
                name.strip_prefix("work-").and_then(|r| r.get(..64)).is_some_and(|k| is_hash(k) && self.is_locked(k));
            if old && !busy {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }
}

/// Writes bytes atomically outside the cache (reports): the temp file sits beside `dest`, so
/// the rename never crosses filesystems and a read-only cache does not matter.
pub fn write_atomic_beside(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    write_via(&tmp, dest, bytes)
}

/// Writes `bytes` to `tmp`, fsyncs, renames it to `dest` and fsyncs the directory.
fn write_via(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let res = (|| -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(tmp, dest)?;
        if let Some(parent) = dest.parent() {
            if let Ok(d) = fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(tmp);
        Error::io(format!("cannot write {}", dest.display()), e)
    })
}
