//! The lookup index: what a no-op rerun needs of each run record, without reading it.
//!
//! A cached instance costs a key, a record read and parse, and a stat of every output object.
//! At 10,000 instances the record parses dominate (#19). The lookup index keeps, per pipeline,
//! the instance → key map of its last run and, for each of those keys, the stat identity of the
//! run record (size, mtime, inode) and the outputs it names. A lookup whose record file still has
//! that identity takes the outputs from the index; everything else goes the old way (read,
//! validate, parse) and refreshes the entry. Every object is still stat-checked on every lookup
//! (a changed object is rehashed and quarantined as before), and a record that was removed,
//! rewritten or edited has another identity, so it is read again.
//!
//! The file (`index/<pipeline>.lookup`) is a header, the blake3 of the body and the body
//! (bincode). A file that is short, of another format or whose body does not match its hash is
//! ignored and rebuilt from the records by the next run: it holds nothing the records do not.

use crate::diag::Result;
use crate::store::{ObjectRef, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"REPROLK1";

/// How a file looked when it was read: a change to any of these means "read it again".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns).
    pub mtime_ns: u128,
    /// Inode (0 where there is none): a record is replaced by renaming a new file over it.
    pub inode: u64,
}

/// A key or object hash as its 32 bytes (the index holds no hex).
pub type Digest = [u8; 32];

/// The 32 bytes of a 64-digit hex hash; `None` for anything else.
pub fn digest(hex: &str) -> Option<Digest> {
    crate::store::is_hash(hex).then(|| blake3::Hash::from_hex(hex).ok()).flatten().map(|h| *h.as_bytes())
}

/// One output of a record, as the index keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Output name.
    pub name: String,
    /// The object's hash.
    pub hash: Digest,
    /// What the record saw of the object.
    pub size: u64,
    /// Its mtime (ns) when the record was written.
    pub mtime_ns: u128,
}

/// What the index keeps of one run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The record file as it was when these outputs were read from it.
    pub record: FileId,
    /// The outputs the record names, by name.
    pub outputs: Vec<Output>,
}

impl Entry {
    /// The entry of a record's outputs (validated records only name hashes).
    pub fn new(record: FileId, outputs: &BTreeMap<String, ObjectRef>) -> Option<Entry> {
        let outputs = outputs
            .iter()
            .map(|(name, o)| {
                Some(Output { name: name.clone(), hash: digest(&o.hash)?, size: o.size, mtime_ns: o.mtime_ns })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Entry { record, outputs })
    }

    /// The outputs as a run record names them.
    pub fn objects(&self) -> BTreeMap<String, ObjectRef> {
        self.outputs
            .iter()
            .map(|o| {
                let hash = blake3::Hash::from_bytes(o.hash).to_hex().to_string();
                (o.name.clone(), ObjectRef { hash, size: o.size, mtime_ns: o.mtime_ns })
            })
            .collect()
    }
}

/// A pipeline's lookup index: two sorted lists, searched by bisection (decoding them is one
/// pass with two small allocations per entry; no hash map is built).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LookupIndex {
    /// Instance → key of its last settled run, sorted by instance.
    instances: Vec<(String, Digest)>,
    /// Key → what its run record holds, sorted by key.
    entries: Vec<(Digest, Entry)>,
}

/// A cache hit: the outputs, and the record when it had to be read.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Output name → object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// The parsed record (a lookup the index could not answer).
    pub record: Option<crate::store::Record>,
    /// The entry to keep for this key when the index did not have it as it is.
    pub fresh: Option<Entry>,
}

impl LookupIndex {
    /// An index of these instances' keys and these entries (entries of keys no instance has
    /// are dropped).
    pub fn new(instances: BTreeMap<String, Digest>, mut entries: BTreeMap<Digest, Entry>) -> LookupIndex {
        let used: std::collections::BTreeSet<Digest> = instances.values().copied().collect();
        entries.retain(|k, _| used.contains(k));
        LookupIndex { instances: instances.into_iter().collect(), entries: entries.into_iter().collect() }
    }

    /// The key an instance had at its last settled run.
    pub fn key_of(&self, instance: &str) -> Option<&Digest> {
        let i = self.instances.binary_search_by(|(n, _)| n.as_str().cmp(instance)).ok()?;
        Some(&self.instances[i].1)
    }

    /// What the index holds of a key's record.
    pub fn entry(&self, key: &Digest) -> Option<&Entry> {
        let i = self.entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(&self.entries[i].1)
    }

    /// Takes the index apart into its maps.
    pub fn into_maps(self) -> (BTreeMap<String, Digest>, BTreeMap<Digest, Entry>) {
        (self.instances.into_iter().collect(), self.entries.into_iter().collect())
    }

    /// Encodes the index with its header and checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("the index encodes");
        let mut out = Vec::with_capacity(body.len() + 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(blake3::hash(&body).as_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes an index; `None` for anything that is not an intact, sorted index of this format.
    pub fn from_bytes(bytes: &[u8]) -> Option<LookupIndex> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (hash, body) = rest.split_at_checked(32)?;
        if blake3::hash(body).as_bytes() != hash {
            return None;
        }
        let (idx, used): (LookupIndex, usize) =
            bincode::serde::decode_from_slice(body, bincode::config::standard()).ok()?;
        let sorted = idx.instances.is_sorted_by(|a, b| a.0 < b.0) && idx.entries.is_sorted_by(|a, b| a.0 < b.0);
        (used == body.len() && sorted).then_some(idx)
    }
}

impl Store {
    fn lookup_path(&self, pipeline: &Path) -> std::path::PathBuf {
        self.index_path(pipeline).with_extension("lookup")
    }

    /// The lookup index of a pipeline: empty when missing or damaged (a damaged one is logged
    /// and rebuilt from the records by the next run).
    pub fn read_lookup(&self, pipeline: &Path) -> LookupIndex {
        let Ok(bytes) = std::fs::read(self.lookup_path(pipeline)) else { return LookupIndex::default() };
        LookupIndex::from_bytes(&bytes).unwrap_or_else(|| {
            tracing::debug!(
                "the lookup index of {} is damaged; rebuilding it from the run records",
                pipeline.display()
            );
            LookupIndex::default()
        })
    }

    /// Replaces a pipeline's lookup index (atomically).
    pub fn write_lookup(&self, pipeline: &Path, idx: &LookupIndex) -> Result<()> {
        self.write_atomic(&self.lookup_path(pipeline), &idx.to_bytes())
    }

    /// The stat identity of the record of `key`, if it exists.
    pub fn record_id(&self, key: &str) -> Option<FileId> {
        Store::file_id(&self.record_path(key))
    }

    /// [`Store::lookup`] answered from the index when the record file is the one the index
    /// read: the same hits and misses, every output object checked the same way.
    pub fn lookup_indexed(&self, key: &str, outputs: &[String], idx: &LookupIndex) -> Option<Hit> {
        let d = digest(key)?;
        let id = self.record_id(key)?;
        if let Some(e) = idx.entry(&d).filter(|e| e.record == id) {
            let objects = e.objects();
            let complete = outputs.iter().all(|o| objects.contains_key(o));
            return (complete && objects.values().all(|o| self.object_ok(o))).then_some(Hit {
                outputs: objects,
                record: None,
                fresh: None,
            });
        }
        // Identity taken before the read: a record replaced in between is read again next time.
        let rec = self.lookup(key, outputs)?;
        Some(Hit { outputs: rec.outputs.clone(), fresh: Entry::new(id, &rec.outputs), record: Some(rec) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> LookupIndex {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let entry = |b: u8| Entry {
            record: FileId { size: 10 + b as u64, mtime_ns: 1_700_000_000_000_000_000 + b as u128, inode: 7 },
            outputs: vec![Output { name: "out".into(), hash: [b; 32], size: 3, mtime_ns: 5 }],
        };
        LookupIndex::new(
            BTreeMap::from([("a".to_string(), k2), ("b[x=1]".to_string(), k1)]),
            BTreeMap::from([(k1, entry(1)), (k2, entry(2)), ([9u8; 32], entry(9))]),
        )
    }

    #[test]
    fn round_trip_and_search() {
        let idx = index();
        let back = LookupIndex::from_bytes(&idx.to_bytes()).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.key_of("a"), Some(&[2u8; 32]));
        assert_eq!(back.key_of("b[x=1]"), Some(&[1u8; 32]));
        assert_eq!(back.key_of("c"), None);
        assert_eq!(back.entry(&[1u8; 32]).unwrap().record.size, 11);
        // An entry no instance names is dropped.
        assert_eq!(back.entry(&[9u8; 32]), None);
        let objects = back.entry(&[2u8; 32]).unwrap().objects();
        assert_eq!(objects["out"].hash, "02".repeat(32));
    }

    #[test]
    fn a_damaged_index_is_refused() {
        let bytes = index().to_bytes();
        for cut in [0, 7, 8, 39, 40, bytes.len() - 1] {
            assert!(LookupIndex::from_bytes(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for at in [0, 9, 45, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            assert!(LookupIndex::from_bytes(&b).is_none(), "byte {at} flipped");
        }
        // A well-formed body whose lists are out of order (bisection would miss) is refused.
        let mut unsorted = index();
        unsorted.instances.reverse();
        assert!(LookupIndex::from_bytes(&unsorted.to_bytes()).is_none());
    }

    #[test]
    fn digests_are_exactly_the_store_hashes() {
        assert_eq!(digest(&"0f".repeat(32)), Some([0x0f; 32]));
        assert_eq!(digest(&"0F".repeat(32)), None, "the store names hashes in lowercase");
        assert_eq!(digest("0f"), None);
        assert_eq!(digest(&"zz".repeat(32)), None);
    }
}
