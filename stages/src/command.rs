//! `command`: run an external program for what has no built-in stage (a user's script).
//!
//! The program runs in the stage's work directory. Placeholders in `run`: `{in}` (every input
//! path: as separate arguments when it is a whole argument, space-joined inside one), `{in0}`, `{in1}` … (one input path each), `{out:NAME}` (the
//! path the program must write output NAME to), `{seed}` (the instance seed). The files in
//! `code` are hashed by content into the cache key, so editing the script reruns the stage.
//! A non-zero exit or a missing output fails the stage with the tail of stderr.

use repro_core::ParamError;
use repro_core::{stage_params, Ctx, InputSlot, Metrics, StageError, StageResult, TypedStage};

stage_params! {
    /// Params of `command`.
    pub struct CommandParams {
        /// The command line: program then arguments, with placeholders {in}, {inN}, {out:NAME}, {seed}.
        run: Vec<String> = vec![],
        /// Names of the files the program writes (each via {out:NAME}).
        outputs: Vec<String> = vec!["out".into()],
        /// Files whose content joins the cache key (the scripts the command runs).
        code: Vec<String> = vec![],
        /// Extra environment variables.
        env: std::collections::BTreeMap<String, String> = Default::default(),
    }
}

pub struct Command;

impl TypedStage for Command {
    type Params = CommandParams;
    const KIND: &'static str = "command";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Run an external program with declared inputs (paths), declared output files and `code` files that join the key; fails with the stderr tail on a non-zero exit or a missing output.";
    const INPUTS: &'static [InputSlot] =
        &[InputSlot { name: "inputs", doc: "artifacts passed as paths", required: false, many: true }];

    fn validate(p: &CommandParams) -> Result<(), ParamError> {
        if p.run.is_empty() {
            return Err(ParamError::new(
                "run",
                "give the command line, e.g. run = [\"python3\", \"scripts/x.py\", \"{in0}\", \"{out:out}\"]",
            ));
        }
        for o in &p.outputs {
            if o.is_empty() || o.contains(['/', '\\']) || o.starts_with('.') {
                return Err(ParamError::new("outputs", format!("`{o}` is not a plain file name")));
            }
        }
        Ok(())
    }

    fn outputs(p: &CommandParams) -> Vec<String> {
        p.outputs.clone()
    }

    fn external_files(p: &CommandParams) -> Vec<String> {
        p.code.clone()
    }

    fn run(&self, p: &CommandParams, ctx: &Ctx) -> StageResult<Metrics> {
        let ins: Vec<String> =
            ctx.inputs.get("inputs").into_iter().flatten().map(|a| a.path.display().to_string()).collect();
        let mut argv: Vec<String> = Vec::new();
        for a in &p.run {
            if a == "{in}" {
                argv.extend(ins.iter().cloned());
                continue;
            }
            let mut s = a.replace("{seed}", &ctx.seed.to_string()).replace("{in}", &ins.join(" "));
            for (i, path) in ins.iter().enumerate().rev() {
                s = s.replace(&format!("{{in{i}}}"), path);
            }
            for o in &p.outputs {
                s = s.replace(&format!("{{out:{o}}}"), &ctx.output(o).display().to_string());
            }
            argv.push(s);
        }
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(ctx.out_dir)
            .env("REPRO_SEED", ctx.seed.to_string())
            .env("REPRO_ROOT", ctx.root)
            .env("REPRO_THREADS", ctx.threads.to_string())
            .envs(&p.env)
            .stdin(std::process::Stdio::null());
        let out = run_cancellable(cmd, ctx).map_err(|e| match e {
            Spawn::Start(e) => StageError::param("run", format!("cannot start `{}`: {e}", argv[0])),
            Spawn::Cancelled => StageError::cancelled(),
        })?;
        // Kept by the executor with the run (`repro log`), whether the command succeeded or not.
        let logs = ctx.out_dir.join(repro_core::LOG_DIR);
        if std::fs::create_dir_all(&logs).is_ok() {
            let _ = std::fs::write(logs.join("stdout"), &out.stdout);
            let _ = std::fs::write(logs.join("stderr"), &out.stderr);
        }
        let tail = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        if !out.status.success() {
            return Err(StageError::msg(format!(
                "`{}` exited with {}; stderr tail:\n{}",
                argv.join(" "),
                out.status,
                tail(&out.stderr)
            )));
        }
        for o in &p.outputs {
            if !ctx.output(o).is_file() {
                return Err(StageError::param(
                    "outputs",
                    format!(
                        "the command did not write output `{o}` (pass it the path with {{out:{o}}}); stderr tail:\n{}",
                        tail(&out.stderr)
                    ),
                ));
            }
        }
        Ok(Metrics::new())
    }
}

enum Spawn {
    Start(std::io::Error),
    Cancelled,
}

/// Runs the program in a process group of its own, collecting its output; when the run is
/// interrupted (Ctrl-C, SIGTERM) the whole group gets SIGTERM, then SIGKILL after two seconds,
/// and the stage ends as cancelled within about a second.
fn run_cancellable(mut cmd: std::process::Command, ctx: &Ctx) -> Result<std::process::Output, Spawn> {
    use std::io::Read;
    use std::process::Stdio;
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(Spawn::Start)?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let status = loop {
        if let Some(s) = child.try_wait().map_err(Spawn::Start)? {
            break s;
        }
        if ctx.check_cancel().is_err() {
            signal_group(&mut child);
            return Err(Spawn::Cancelled);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// SIGTERM to the child's process group, SIGKILL two seconds later if it is still there.
fn signal_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let group = format!("-{}", child.id());
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..40 {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
