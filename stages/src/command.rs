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
        let out = cmd.output().map_err(|e| StageError::param("run", format!("cannot start `{}`: {e}", argv[0])))?;
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
