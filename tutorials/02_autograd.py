# %% [markdown]
# # 2. Autograd and gradient descent
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# A network learns by nudging every weight, again and again, in the direction that makes its
# mistakes smaller. This lesson is about the two pieces that make a nudge: the *gradient*,
# which PyTorch's *autograd* computes for you, and the *learning rate*, which says how far to
# move. You will see the graph autograd records, why gradients pile up unless you clear them
# (`zero_grad`), what `torch.no_grad()` is for, and what a learning rate that is too small or
# too large does.

# %% tags=["plain"]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print("device:", device)

# %% [markdown]
# ## Loss, gradient, step
#
# The *loss* is one number that says how wrong the network is on some examples: 0 when it is
# perfect, larger when it is worse (lesson 6 builds the loss used for classifiers). Each
# parameter $\theta$ (a weight or a bias) has a *gradient* $\partial L / \partial \theta$: how
# much the loss $L$ rises when $\theta$ rises a tiny bit. A positive gradient says "smaller
# $\theta$, smaller loss"; a negative one the reverse. *Gradient descent* moves every parameter
# a little against its gradient,
#
# $$\theta \leftarrow \theta - \eta \, \frac{\partial L}{\partial \theta},$$
#
# where $\eta$ (eta), the *learning rate*, sets the size of the step. A network has hundreds of
# thousands of parameters; working out each gradient by hand is possible (lesson 6 does it
# once) but tedious. *Autograd* does it for you.
#
# ## Autograd on one weight
#
# Take a model with one weight $w$ and one bias $b$ that predicts $\hat y = w x + b$, and a
# squared-error loss $L = (\hat y - y)^2$ on one example, $x = 3$, $y = 10$. Creating $w$ and
# $b$ with `requires_grad=True` tells PyTorch to record every operation done with them. The
# record is a *graph*: each result holds, in `grad_fn`, the operation that made it, and that
# operation points back to its own inputs.

# %% tags=["plain"]
w = torch.tensor(2.0, requires_grad=True)
b = torch.tensor(1.0, requires_grad=True)
x, y = torch.tensor(3.0), torch.tensor(10.0)

prediction = w * x + b  # 7
loss = (prediction - y) ** 2  # 9
print("loss", loss.item(), "made by", loss.grad_fn)
print("whose inputs were made by", [fn for fn, _ in loss.grad_fn.next_functions])
assert loss.item() == 9.0 and loss.grad_fn is not None and x.grad_fn is None

# %% [markdown]
# Drawn from the leaves (the tensors you made, in yellow) to the loss, the graph reads like
# the formula: multiply, add, subtract, square. Each box is a `...Backward0` object: it knows
# how to pass a gradient back through its own operation.

# %% alt="The autograd graph of the loss, drawn left to right: the leaves w and b in yellow boxes; w feeds MulBackward0, which with b feeds AddBackward0, then SubBackward0, then PowBackward0, the loss."
from mlplab.viz.diagram import draw_graph

fig, ax = plt.subplots(figsize=(9, 2.2))
nodes = draw_graph(ax, loss, {"w": w, "b": b})
plt.show()
assert nodes["PowBackward0"] == ["SubBackward0"] and set(nodes["AddBackward0"]) == {"MulBackward0", "b"}

# %% [markdown]
# `loss.backward()` walks that graph from the loss back to the leaves, applying the chain rule
# at each box, and stores each leaf's gradient in its `.grad`. By hand:
# $\partial L / \partial w = 2(\hat y - y)\,x = 2 \cdot (-3) \cdot 3 = -18$ and
# $\partial L / \partial b = 2(\hat y - y) = -6$. Both negative: raising $w$ or $b$ would
# lower the loss, since the prediction 7 is below the target 10.

# %% tags=["plain"]
loss.backward()
print("w.grad", w.grad.item(), " b.grad", b.grad.item())
assert w.grad.item() == 2 * (7 - 10) * 3 == -18
assert b.grad.item() == 2 * (7 - 10) == -6
assert x.grad is None  # x was not asked for: no gradient kept

# %% [markdown]
# ## Gradients add up: zero_grad
#
# `backward()` does not *replace* `.grad`, it *adds* to it. Run the same forward and backward
# pass again and the gradient doubles. That is on purpose (below), but it means a training loop
# must clear the old gradients before each new backward pass: that is what
# `optimizer.zero_grad()` does for every parameter. Forgetting it is one of the most common bugs
# in hand-written loops.

# %% tags=["plain"]
loss = (w * x + b - y) ** 2
loss.backward()
print("after a second backward: w.grad", w.grad.item())
assert w.grad.item() == 2 * -18

w.grad = None  # what zero_grad(set_to_none=True), the default, does
b.grad = None
loss = (w * x + b - y) ** 2
loss.backward()
print("cleared, then one backward: w.grad", w.grad.item())
assert w.grad.item() == -18

# %% [markdown]
# Why add? Because it lets you split work. The gradient of a sum is the sum of the gradients,
# so a batch too big for memory can go through in pieces, each piece's `backward()` adding its
# share. Here a batch of 64 images through a small network, whole and in two halves: the same
# gradient, up to float rounding. The loss is `F.cross_entropy`, a classifier's usual loss: one
# number per batch that is small when the network gives the right class a high score (lesson 6
# takes it apart).

# %% tags=["plain"]
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
images = torch.rand(64, 28, 28, device=device)  # stand-ins: the data is lesson 3's business
targets = torch.randint(0, 10, (64,), device=device)

net.zero_grad()
F.cross_entropy(net(images), targets).backward()
whole = net[1].weight.grad.clone()

net.zero_grad()
for half in (slice(0, 32), slice(32, 64)):
    # each half's mean loss, weighted by its share of the batch
    (F.cross_entropy(net(images[half]), targets[half]) * 32 / 64).backward()
print("largest difference, whole vs two halves:", (whole - net[1].weight.grad).abs().max().item())
assert torch.allclose(whole, net[1].weight.grad, atol=1e-6)

# %% [markdown]
# ## torch.no_grad()
#
# Recording the graph costs memory and time, and some work must not be recorded at all: the
# update of the weights itself, and evaluating the network on test images. Inside
# `with torch.no_grad():` nothing is recorded, and results have no `grad_fn`.

# %% tags=["plain"]
with torch.no_grad():
    out = net(images)
print("under no_grad: requires_grad", out.requires_grad, " grad_fn", out.grad_fn)
assert out.grad_fn is None and not out.requires_grad
assert net(images).grad_fn is not None  # outside it, recorded again

# %% [markdown]
# ## Gradient descent, and the learning rate
#
# Now the step itself, on the smallest problem there is: one parameter $w$ and the loss
# $L(w) = (w - 3)^2$, lowest at $w = 3$. Its gradient is $2(w - 3)$, so a step is
# $w \leftarrow w - \eta \cdot 2(w - 3)$, and the distance to 3 is multiplied by $(1 - 2\eta)$
# at every step. That one number tells the whole story:
#
# - $\eta = 0.02$: the distance shrinks by only 4% a step. *Too small*: correct, but slow.
# - $\eta = 0.3$: it shrinks to 40% a step. About right.
# - $\eta = 0.9$: the factor is $-0.8$. Each step jumps over the minimum to the other side,
#   and comes back a little closer. It converges, zig-zagging.
# - $\eta = 1.1$: the factor is $-1.2$. Each jump lands further away than it started. *Too
#   large*: the loss grows without end.
#
# The loop below is gradient descent written with autograd: forward, `backward()`, then the
# update under `no_grad()`, then clear the gradient.

# %% tags=["plain"]
def descend(lr: float, steps: int = 25, start: float = 0.0) -> list[float]:
    """The values w takes under gradient descent on (w - 3)^2, from `start`."""
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    path = [w.item()]
    for _ in range(steps):
        loss = (w - 3) ** 2
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        w.grad = None
        path.append(w.item())
    return path


rates = {"too small (0.02)": 0.02, "about right (0.3)": 0.3, "zig-zag (0.9)": 0.9, "too large (1.1)": 1.1}
paths = {name: descend(lr) for name, lr in rates.items()}
for name, path in paths.items():
    print(f"{name:18} w after 25 steps: {path[-1]:10.4f}")

distance = {name: abs(path[-1] - 3) for name, path in paths.items()}
assert distance["about right (0.3)"] < 1e-6
assert distance["too small (0.02)"] > 1.0  # over a third of the distance still to go
assert distance["zig-zag (0.9)"] < 0.02
assert distance["too large (1.1)"] > 3 * 1.2**24  # grew at every step

# %% tags=["plain"] alt=["Two panels. Left: the parabola (w minus 3) squared with the first eight steps of gradient descent marked for each learning rate: 0.02 creeps slowly from 0 toward 3; 0.3 reaches 3 in a few steps; 0.9 jumps from side to side of 3 and closes in; 1.1 jumps from side to side further out each time. Right: the distance from w to 3 against the step, on a log scale, one line per learning rate: 0.3 falls fastest, 0.9 falls more slowly, 0.02 barely falls, and 1.1 rises steadily."]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
grid = torch.linspace(-3, 9, 200)
ax1.plot(grid, (grid - 3) ** 2, color="0.6")
for (name, path), color in zip(paths.items(), ["tab:blue", "tab:green", "tab:orange", "tab:red"]):
    ws = torch.tensor(path[:9])
    ax1.plot(ws, (ws - 3) ** 2, "o-", color=color, label=name, ms=4, lw=1)
    ax2.semilogy([abs(v - 3) for v in path], color=color, label=name)
ax1.set_xlim(-3, 9)
ax1.set_ylim(-1, 40)
ax1.set_xlabel("w")
ax1.set_ylabel("loss (w - 3)²")
ax1.legend(fontsize=8)
ax2.set_xlabel("step")
ax2.set_ylabel("distance from the minimum, |w - 3|")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# A network's loss is not a parabola, but near its minimum it curves much like one, in
# millions of directions at once, and the same rule holds: the steepest direction sets the
# largest learning rate that still converges. Lesson 3 shows the same three behaviours on
# MNIST.
#
# ## An optimizer does the update
#
# `torch.optim.SGD(params, lr)` is this update for every parameter at once: `step()` does
# $\theta \leftarrow \theta - \eta \, \theta.\mathrm{grad}$, and `zero_grad()` clears the
# gradients. (*SGD*, stochastic gradient descent, is gradient descent on a random batch of
# examples at a time: lesson 3.) Here one step by hand and one by the optimizer, from the same
# weights and the same gradients: the same new weights, up to the last bit of float32
# rounding (the optimizer multiplies and subtracts in one fused operation).

# %% tags=["plain"]
torch.manual_seed(0)
by_hand = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
by_optim = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
by_optim.load_state_dict(by_hand.state_dict())
optimizer = torch.optim.SGD(by_optim.parameters(), lr=0.1)

F.cross_entropy(by_hand(images), targets).backward()
with torch.no_grad():
    for p in by_hand.parameters():
        p -= 0.1 * p.grad

optimizer.zero_grad()
F.cross_entropy(by_optim(images), targets).backward()
optimizer.step()

for (name, p), q in zip(by_hand.named_parameters(), by_optim.parameters()):
    assert torch.allclose(p, q, rtol=0, atol=1e-7), name
largest = max((p - q).abs().max().item() for p, q in zip(by_hand.parameters(), by_optim.parameters()))
print(f"one SGD step by hand vs torch.optim.SGD's: largest difference {largest:.1e}")

# %% [markdown]
# ## Inputs need no gradient
#
# The classic tutorials call `images.requires_grad_()` on every batch. That asks autograd for
# the gradient of the loss with respect to each *pixel* too, which training never uses: it
# only updates parameters. The weights' gradients come out the same either way; the pixel
# gradients are extra work thrown away. (They have one use: they show which pixels the loss is
# most sensitive to, a *saliency map*.)

# %% tags=["plain"]
by_hand.zero_grad()
F.cross_entropy(by_hand(images), targets).backward()
plain = [p.grad.clone() for p in by_hand.parameters()]

by_hand.zero_grad()
pixels = images.clone().requires_grad_()
F.cross_entropy(by_hand(pixels), targets).backward()
print("a gradient for every pixel:", tuple(pixels.grad.shape))
assert all(torch.equal(a, p.grad) for a, p in zip(plain, by_hand.parameters()))

# %% [markdown]
# ## The same step in mlplab
#
# `mlplab.train` runs these steps for you (lesson 3 shows the whole loop). From the same seed
# it builds the same initial network as `torch.manual_seed(0)` followed by building the model,
# draws its batches from a seeded shuffle, scales pixels as `Normalize((0.5,), (0.5,))` does,
# and for a plain SGD step at a constant learning rate it computes exactly this update. Below,
# one step of mlplab's against one step by hand on the same first batch.
#
# mlplab has several *engines*, ways of computing the step. `engine="autograd"` is the
# `nn.Module` and autograd, as above. The default for networks like this one, `fast`, uses no
# autograd at all: it has the backward pass written out by hand as matrix products (lesson 6
# derives it). Both take the same step.

# %%
import mlplab

mnist = mlplab.load_dataset("mnist")
config = mlplab.TrainConfig(
    model="784-32-10:relu", optimizer="sgd", lr=0.1, batch_size=64, iterations=1,
    schedule="constant", normalization="tutorial", seed=0, eval_every=1,
)
first = mlplab.BatchSampler(60_000, 64, seed=0).next()  # the indices of mlplab's first batch
x_first = (mnist.train.x[first].float() / 255 - 0.5) / 0.5
y_first = mnist.train.y[first]

torch.manual_seed(0)
mine = mlplab.build_model("784-32-10:relu")
optimizer = torch.optim.SGD(mine.parameters(), lr=0.1)
optimizer.zero_grad()
F.cross_entropy(mine(x_first), y_first).backward()
optimizer.step()

for engine in ("autograd", "fast"):
    theirs = mlplab.train(config.replace(engine=engine), mnist).model
    largest = max((a - b).abs().max().item() for a, b in zip(mine.parameters(), theirs.parameters()))
    print(f"engine {engine:8}: largest difference from our step {largest:.1e}")
    assert largest < 1e-6

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment learning-rates`, or with a lab running,
# http://127.0.0.1:8008/?experiment=learning-rates) trains model C at four learning rates side by side, from too small to large, so you can watch the steps of this lesson on a real network. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Use autograd to find the slope of $f(w) = w^3 - 2w$ at $w = 2$, and check it against
# the derivative $3w^2 - 2$.

# %% tags=["solution"]
w = torch.tensor(2.0, requires_grad=True)
(w**3 - 2 * w).backward()
print("autograd:", w.grad.item(), " by hand:", 3 * 2.0**2 - 2)
assert w.grad.item() == 10.0

# %% [markdown]
# **2.** Write the descent on $(w - 3)^2$ with $\eta = 0.1$, but forget to clear the gradient.
# What happens to $w$ over 40 steps, compared with the correct loop?

# %% tags=["solution"]
def descend_forgetting(lr: float, steps: int) -> list[float]:
    w = torch.tensor(0.0, requires_grad=True)
    path = [w.item()]
    for _ in range(steps):
        ((w - 3) ** 2).backward()  # adds to every gradient so far: never cleared
        with torch.no_grad():
            w -= lr * w.grad
        path.append(w.item())
    return path


forgot, correct = descend_forgetting(0.1, 40), descend(0.1, 40)
print(f"after 40 steps: forgot zero_grad {forgot[-1]:.3f}, correct loop {correct[-1]:.6f}")
print("forgot: ", [round(v, 2) for v in forgot[:12]], "...")
# the stale gradients carry it far past 3, and it swings around the minimum
assert max(forgot) > 5.0 and abs(correct[-1] - 3) < 1e-3 and abs(forgot[-1] - 3) > 0.1

# %% [markdown]
# **3.** For $L(w) = (w - 3)^2$ the distance to the minimum is multiplied by $1 - 2\eta$ each
# step. Which learning rates converge? Check your answer just below and just above the limit.

# %% tags=["solution"]
# |1 - 2 lr| < 1  <=>  0 < lr < 1
below, above = descend(0.99, 200), descend(1.01, 200)
print(f"lr 0.99: |w - 3| = {abs(below[-1] - 3):.2e};  lr 1.01: |w - 3| = {abs(above[-1] - 3):.2e}")
assert abs(below[-1] - 3) < abs(below[0] - 3) and abs(above[-1] - 3) > abs(above[0] - 3)

# %% [markdown]
# Next, [lesson 3](03_seven_steps.ipynb) puts the pieces together on MNIST: a `Dataset` and a
# `DataLoader`, a model class, and the training loop.
