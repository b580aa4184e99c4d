"""No-op reruns side by side: the same pipelines in repro, Snakemake and DVC, fully cached, timed
as whole processes (what a user waits for), median of N runs, in one run of this script.

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install snakemake dvc
    cargo build --release
    /tmp/refvenv/bin/python benches/reference/noop.py            # 50 stages, 10,000 instances

Pipelines (each stage writes a small file; what is timed is deciding that nothing reruns):
- "50 stages": a chain of 10 commands feeding a fan of 40, as `cargo bench --bench engine`.
- "10,000 instances": one step over a 100 x 100 grid (repro: a `synthetic_linear` matrix with
  n = 4; Snakemake: one rule with 10,000 wildcard targets; DVC: a `foreach` stage of 10,000
  items). For Snakemake and DVC the grid's outputs are written directly and recorded as produced
  (`snakemake --touch`, `dvc commit -f`): running 10,000 shell jobs through them takes hours
  here. `--skip-dvc-10k` leaves DVC's grid out; `--only=DVC` (or repro, Snakemake) runs one tool.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPRO = ROOT / "target" / "release" / "repro"
BIN = Path(sys.executable).parent


def timed(cmd, cwd, n):
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def repro_chain(d, stages):
    s = '[pipeline]\nname = "bench"\nseed = 1\n\n[stage.s0]\nkind = "command"\nrun = ["sh", "-c", "echo 0 > {out:out}"]\n\n'
    for i in range(1, 10):
        s += f'[stage.s{i}]\nkind = "command"\ninputs = ["s{i-1}"]\nrun = ["sh", "-c", "cat {{in0}} > {{out:out}}; echo {i} >> {{out:out}}"]\n\n'
    fan = ", ".join(str(i) for i in range(stages - 10))
    s += f'[stage.fan]\nkind = "command"\ninputs = ["s9"]\nmatrix = {{ i = [{fan}] }}\nrun = ["sh", "-c", "cat {{in0}} > {{out:out}}; echo ${{i}} >> {{out:out}}"]\n'
    (d / "pipelines").mkdir()
    (d / "pipelines" / "p.toml").write_text(s)
    return [str(REPRO), "run", "-q", "pipelines/p.toml"]


def repro_grid(d, n):
    a = ", ".join(str(i) for i in range(n // 100))
    b = ", ".join(str(i) for i in range(100))
    (d / "pipelines").mkdir()
    (d / "pipelines" / "p.toml").write_text(
        f'[pipeline]\nname = "sweep"\n[stage.gen]\nkind = "synthetic_linear"\nn = 4\nmatrix = {{ a = [{a}], b = [{b}] }}\n'
    )
    return [str(REPRO), "run", "-q", "pipelines/p.toml"]


def snake_chain(d, stages):
    s = 'rule all:\n    input: expand("fan/{i}.txt", i=range(%d))\n\n' % (stages - 10)
    s += 'rule s0:\n    output: "s0.txt"\n    shell: "echo 0 > {output}"\n\n'
    for i in range(1, 10):
        s += f'rule s{i}:\n    input: "s{i-1}.txt"\n    output: "s{i}.txt"\n    shell: "cat {{input}} > {{output}}; echo {i} >> {{output}}"\n\n'
    s += 'rule fan:\n    input: "s9.txt"\n    output: "fan/{i}.txt"\n    shell: "cat {input} > {output}; echo {wildcards.i} >> {output}"\n'
    (d / "Snakefile").write_text(s)
    return [str(BIN / "snakemake"), "-c1", "--quiet", "all"]


def grid_outputs(d, n, name):
    """Writes the grid's outputs directly: running 10,000 shell jobs through Snakemake or DVC
    takes hours here, and the no-op rerun only decides that nothing is out of date."""
    for a in range(n // 100):
        for b in range(100):
            p = d / name(a, b)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{a} {b}\n")


def snake_grid(d, n):
    s = 'rule all:\n    input: expand("out/{a}_{b}.txt", a=range(%d), b=range(100))\n\n' % (n // 100)
    s += 'rule gen:\n    output: "out/{a}_{b}.txt"\n    shell: "echo {wildcards.a} {wildcards.b} > {output}"\n'
    (d / "Snakefile").write_text(s)
    grid_outputs(d, n, lambda a, b: f"out/{a}_{b}.txt")
    # The "cold run" records the existing outputs as produced (`--touch`), then no-op reruns.
    subprocess.run([str(BIN / "snakemake"), "-c2", "--quiet", "--touch", "all"], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [str(BIN / "snakemake"), "-c2", "--quiet", "all"]


def dvc_init(d):
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=d, check=True)
    subprocess.run([str(BIN / "dvc"), "config", "core.analytics", "false"], cwd=d, check=True)


def dvc_chain(d, stages):
    dvc_init(d)
    lines = ["stages:", "  s0:", "    cmd: echo 0 > s0.txt", "    outs: [s0.txt]"]
    for i in range(1, 10):
        lines += [f"  s{i}:", f"    cmd: cat s{i-1}.txt > s{i}.txt; echo {i} >> s{i}.txt", f"    deps: [s{i-1}.txt]", f"    outs: [s{i}.txt]"]
    lines += ["  fan:", f"    foreach: {list(range(stages - 10))}", "    do:", "      cmd: cat s9.txt > fan_${item}.txt; echo ${item} >> fan_${item}.txt", "      deps: [s9.txt]", "      outs:", "        - fan_${item}.txt"]
    (d / "dvc.yaml").write_text("\n".join(lines) + "\n")
    return [str(BIN / "dvc"), "repro", "-q"]


def dvc_grid(d, n):
    dvc_init(d)
    items = [f"{a}_{b}" for a in range(n // 100) for b in range(100)]
    (d / "dvc.yaml").write_text(
        "stages:\n  gen:\n    foreach: [" + ", ".join(f'"{i}"' for i in items) + "]\n    do:\n      cmd: echo ${item} > out_${item}.txt\n      outs:\n        - out_${item}.txt\n"
    )
    grid_outputs(d, n, lambda a, b: f"out_{a}_{b}.txt")
    # The "cold run" records the existing outputs in dvc.lock (`dvc commit`), then no-op reruns.
    subprocess.run([str(BIN / "dvc"), "commit", "-f", "-q"], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [str(BIN / "dvc"), "repro", "-q"]


def main():
    skip_dvc_10k = "--skip-dvc-10k" in sys.argv
    n = 10
    cases = [
        ("50 stages", 50, [("repro", repro_chain), ("Snakemake", snake_chain), ("DVC", dvc_chain)]),
        ("10,000 instances", 10_000, [("repro", repro_grid), ("Snakemake", snake_grid)] + ([] if skip_dvc_10k else [("DVC", dvc_grid)])),
    ]
    print(f"no-op reruns, median of {n} whole-process runs (3 where a cold run takes over 10 s); {os.cpu_count()} CPUs")
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
    for what, size, tools in cases:
        for tool, make in tools:
            if only and tool not in only:
                continue
            d = Path(tempfile.mkdtemp(prefix="noop-"))
            try:
                cmd = make(d, size)
                t = time.perf_counter()
                subprocess.run(cmd, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                cold = time.perf_counter() - t
                runs = n if cold < 10 else 3
                m = timed(cmd, d, runs)
                print(f"{what:>17}  {tool:<10} {m * 1e3:9.1f} ms   (median of {runs}; cold run {cold:.1f} s)", flush=True)
            finally:
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
