//! The project config file, `repro.toml` beside `pipelines/`: which executor runs stages and
//! how it submits, with per-profile overrides. Precedence: `--executor`, then
//! `REPRO_EXECUTOR`, then `[profiles.<--profile>]`, then the file's top level, then `local`.
//!
//! ```toml
//! executor = "local"            # or "slurm"
//! [local]
//! cpus = 1                      # threads of a multi-threaded stage without resources.cpus
//!                               # (default: its share of the free threads)
//! [slurm]
//! partition = "debug"           # default partition (a stage's resources.partition wins)
//! cpus = 2                      # CPUs of a multi-threaded stage without resources.cpus
//! max_jobs = 100                # jobs in flight
//! poll_seconds = 2.0            # seconds between squeue polls
//! retries = 0                   # resubmissions of a job that ended without a result
//! sbatch_args = ["--account=lab"]
//! [profiles.paper]
//! executor = "slurm"
//! slurm = { partition = "long" }
//! ```

use repro_engine::diag::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    executor: Option<String>,
    #[serde(default)]
    local: LocalSection,
    #[serde(default)]
    slurm: SlurmSection,
    #[serde(default)]
    profiles: BTreeMap<String, ProfileSection>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSection {
    executor: Option<String>,
    #[serde(default)]
    local: LocalSection,
    #[serde(default)]
    slurm: SlurmSection,
}

/// `[local]`: the local executor's settings; a profile's fields replace the top level's.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// Threads of an instance whose kind can use several and that has no `resources.cpus`
    /// (unset: its share of the free threads).
    pub cpus: Option<usize>,
}

impl LocalSection {
    fn over(self, top: LocalSection) -> LocalSection {
        LocalSection { cpus: self.cpus.or(top.cpus) }
    }
}

/// `[slurm]`: every field optional; a profile's fields replace the top level's.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    pub partition: Option<String>,
    pub cpus: Option<usize>,
    pub max_jobs: Option<usize>,
    pub poll_seconds: Option<f64>,
    pub retries: Option<u32>,
    pub sbatch_args: Option<Vec<String>>,
}

impl SlurmSection {
    fn over(self, top: SlurmSection) -> SlurmSection {
        SlurmSection {
            partition: self.partition.or(top.partition),
            cpus: self.cpus.or(top.cpus),
            max_jobs: self.max_jobs.or(top.max_jobs),
            poll_seconds: self.poll_seconds.or(top.poll_seconds),
            retries: self.retries.or(top.retries),
            sbatch_args: self.sbatch_args.or(top.sbatch_args),
        }
    }
}

/// Which executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// The settings a run uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub executor: ExecutorKind,
    pub local: LocalSection,
    pub slurm: SlurmSection,
}

fn kind(name: &str, from: &str) -> Result<ExecutorKind> {
    match name {
        "local" => Ok(ExecutorKind::Local),
        "slurm" => Ok(ExecutorKind::Slurm),
        other => Err(Error::Usage(format!("{from}: unknown executor `{other}` (expected \"local\" or \"slurm\")"))),
    }
}

/// Reads `<root>/repro.toml` (absent: defaults) and applies the profile, the environment and
/// the flag.
pub fn settings(root: &Path, profile: Option<&str>, flag: Option<&str>) -> Result<Settings> {
    let path = root.join("repro.toml");
    let file: File = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?,
        Err(_) => File::default(),
    };
    let prof = profile.and_then(|p| file.profiles.get(p)).cloned().unwrap_or_default();
    let slurm = prof.slurm.over(file.slurm);
    let local = prof.local.over(file.local);
    if local.cpus == Some(0) {
        return Err(Error::Usage(format!("{}: `[local] cpus` must be at least 1", path.display())));
    }
    let mut executor = ExecutorKind::Local;
    if let Some(e) = &file.executor {
        executor = kind(e, &path.display().to_string())?;
    }
    if let Some(e) = &prof.executor {
        executor = kind(e, &format!("{} [profiles.{}]", path.display(), profile.unwrap_or("")))?;
    }
    if let Ok(e) = std::env::var("REPRO_EXECUTOR") {
        if !e.is_empty() {
            executor = kind(&e, "REPRO_EXECUTOR")?;
        }
    }
    if let Some(e) = flag {
        executor = kind(e, "--executor")?;
    }
    Ok(Settings { executor, local, slurm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_then_environment_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("repro.toml"),
            "executor = \"local\"\n[slurm]\npartition = \"debug\"\nmax_jobs = 10\n[profiles.paper]\nexecutor = \"slurm\"\nslurm = { partition = \"long\" }\n",
        )
        .unwrap();
        let s = settings(dir.path(), None, None).unwrap();
        assert_eq!((s.executor, s.slurm.partition.as_deref()), (ExecutorKind::Local, Some("debug")));
        let s = settings(dir.path(), Some("paper"), None).unwrap();
        assert_eq!(
            (s.executor, s.slurm.partition.as_deref(), s.slurm.max_jobs),
            (ExecutorKind::Slurm, Some("long"), Some(10))
        );
        let s = settings(dir.path(), Some("paper"), Some("local")).unwrap();
        assert_eq!(s.executor, ExecutorKind::Local);
        assert_eq!(s.local.cpus, None);
        assert!(settings(dir.path(), None, Some("pbs")).is_err());
        std::fs::write(dir.path().join("repro.toml"), "executr = \"slurm\"\n").unwrap();
        let e = settings(dir.path(), None, None).unwrap_err().to_string();
        assert!(e.contains("repro.toml") && e.contains("executr") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn local_cpus_from_the_file_and_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("repro.toml"), "[local]\ncpus = 1\n[profiles.big]\nlocal = { cpus = 8 }\n")
            .unwrap();
        assert_eq!(settings(dir.path(), None, None).unwrap().local.cpus, Some(1));
        assert_eq!(settings(dir.path(), Some("big"), None).unwrap().local.cpus, Some(8));
        std::fs::write(dir.path().join("repro.toml"), "[local]\ncpus = 0\n").unwrap();
        let e = settings(dir.path(), None, None).unwrap_err().to_string();
        assert!(e.contains("repro.toml") && e.contains("`[local] cpus` must be at least 1"), "{e}");
        std::fs::write(dir.path().join("repro.toml"), "[local]\ncpu = 1\n").unwrap();
        let e = settings(dir.path(), None, None).unwrap_err().to_string();
        assert!(e.contains("unknown field `cpu`"), "{e}");
    }
}
