"""One D-GEX epoch in PyTorch (CPU, f32, eager autograd + torch.optim.SGD): the same step as
`dgex_epoch_numpy.py` and `cargo bench -p repro-stages --bench train` (943 -> 1500 -> 4760,
tanh, MSE, SGD lr 1e-3, batch 200, 100 random batches). Run on the same machine, side by side:

    python3 benches/reference/dgex_epoch_torch.py        # torch.set_num_threads(2) inside
"""
import time

import torch

torch.set_num_threads(2)
g = torch.Generator().manual_seed(1)
N, P, H, Q, B = 20_000, 943, 1500, 4760, 200
X = torch.rand((N, P), generator=g) * 2 - 1
Y = torch.rand((N, Q), generator=g) * 2 - 1
model = torch.nn.Sequential(torch.nn.Linear(P, H), torch.nn.Tanh(), torch.nn.Linear(H, Q))
with torch.no_grad():
    for m in model:
        if isinstance(m, torch.nn.Linear):
            m.weight.uniform_(-0.03, 0.03, generator=g)
            m.bias.zero_()
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
loss_fn = torch.nn.MSELoss()


def epoch():
    for _ in range(100):
        idx = torch.randperm(N, generator=g)[:B]
        x, y = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()


epoch()
t = time.perf_counter()
for _ in range(2):
    epoch()
print(f"PyTorch {torch.__version__} (CPU, 2 threads), one D-GEX epoch: {(time.perf_counter() - t) / 2:.2f} s")
