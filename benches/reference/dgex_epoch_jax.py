"""One D-GEX epoch in JAX (CPU, f32, one jitted SGD step): the same step as
`dgex_epoch_numpy.py` and `cargo bench -p repro-stages --bench train` (943 -> 1500 -> 4760,
tanh, MSE, SGD lr 1e-3, batch 200, 100 random batches). XLA's CPU backend is limited to two
threads to match the other runs:

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2" \
        taskset -c 0,1 python3 benches/reference/dgex_epoch_jax.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

rng = np.random.default_rng(1)
N, P, H, Q, B = 20_000, 943, 1500, 4760, 200
X = jnp.asarray(rng.uniform(-1, 1, (N, P)).astype(np.float32))
Y = jnp.asarray(rng.uniform(-1, 1, (N, Q)).astype(np.float32))
params = {
    "W1": jnp.asarray(rng.uniform(-0.03, 0.03, (P, H)).astype(np.float32)),
    "b1": jnp.zeros(H, jnp.float32),
    "W2": jnp.asarray(rng.uniform(-0.03, 0.03, (H, Q)).astype(np.float32)),
    "b2": jnp.zeros(Q, jnp.float32),
}


def loss(p, x, y):
    h = jnp.tanh(x @ p["W1"] + p["b1"])
    return jnp.mean((h @ p["W2"] + p["b2"] - y) ** 2)


@jax.jit
def step(p, idx):
    g = jax.grad(loss)(p, X[idx], Y[idx])
    return jax.tree_util.tree_map(lambda w, d: w - 1e-3 * d, p, g)


def epoch():
    global params
    for _ in range(100):
        params = step(params, jnp.asarray(rng.choice(N, B, replace=False)))
    jax.block_until_ready(params)


epoch()
t = time.perf_counter()
for _ in range(2):
    epoch()
print(f"JAX {jax.__version__} (XLA CPU), one D-GEX epoch: {(time.perf_counter() - t) / 2:.2f} s")
