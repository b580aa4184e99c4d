"""One D-GEX epoch written by hand in numpy (+ OpenBLAS): the reference the training issue
quotes (3.1 s on its machine). Run on the same machine as `cargo bench -p repro-stages --bench
train` to compare: 943 -> 1500 -> 4760, tanh, MSE, SGD, batch 200, 100 random batches, f32.

    OPENBLAS_NUM_THREADS=2 python3 benches/reference/dgex_epoch_numpy.py
"""
import time

import numpy as np

rng = np.random.default_rng(1)
N, P, H, Q, B = 20_000, 943, 1500, 4760, 200
X = rng.uniform(-1, 1, (N, P)).astype(np.float32)
Y = rng.uniform(-1, 1, (N, Q)).astype(np.float32)
W1 = rng.uniform(-0.03, 0.03, (P, H)).astype(np.float32)
b1 = np.zeros(H, np.float32)
W2 = rng.uniform(-0.03, 0.03, (H, Q)).astype(np.float32)
b2 = np.zeros(Q, np.float32)
lr = np.float32(1e-3)


def epoch():
    global W1, b1, W2, b2
    for _ in range(100):
        idx = rng.choice(N, B, replace=False)
        x, y = X[idx], Y[idx]
        h = np.tanh(x @ W1 + b1)
        out = h @ W2 + b2
        d = (out - y) * np.float32(2.0 / (B * Q))
        gW2 = h.T @ d
        gb2 = d.sum(0)
        dh = (d @ W2.T) * (1 - h * h)
        gW1 = x.T @ dh
        gb1 = dh.sum(0)
        W2 -= lr * gW2
        b2 -= lr * gb2
        W1 -= lr * gW1
        b1 -= lr * gb1


epoch()
t = time.perf_counter()
for _ in range(2):
    epoch()
print(f"numpy + OpenBLAS by hand, one D-GEX epoch: {(time.perf_counter() - t) / 2:.2f} s")
