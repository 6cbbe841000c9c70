# %% [markdown]
# # 5. Activations and initialisation
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# Lesson 4 showed model A, with a sigmoid, learning slowest, and lesson 3 showed a learning
# rate so large that the ReLU units "died". This lesson opens both up. It compares the
# sigmoid, tanh and ReLU by their slopes; measures the gradient in every layer of a deep
# network, where the sigmoid's gradients *vanish*; finds dead ReLU units and what kills them;
# and shows why the starting weights, the *initialisation*, decide whether a deep network
# learns at all.

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

# %% tags=["data"]
import mlplab

mnist = mlplab.load_dataset("mnist")
train_images, train_labels = mnist.train.x, mnist.train.y  # (60000, 28, 28) uint8, (60000,)
test_images, test_labels = mnist.test.x, mnist.test.y  # (10000, 28, 28) uint8, (10000,)

# %% [markdown]
# The experiments here train many small networks, so the batches come straight from tensors
# on the device: a random permutation of the 60,000 indices, cut into groups of 100, each
# group selecting its rows at once. That is what a shuffling `DataLoader` hands out, without
# calling `__getitem__` a hundred times per batch.

# %% tags=["plain"]
x_train = train_images.float().div(255).view(-1, 784).to(device)  # ToTensor, flattened
y_train = train_labels.to(device)
x_test = test_images.float().div(255).view(-1, 784).to(device)
y_test = test_labels.to(device)


def batches(n_iters, batch_size=100, seed=0):
    """(images, labels) for n_iters iterations, reshuffled every epoch."""
    generator = torch.Generator().manual_seed(seed)
    done = 0
    while True:
        for idx in torch.randperm(len(y_train), generator=generator).split(batch_size):
            yield x_train[idx.to(device)], y_train[idx.to(device)]
            done += 1
            if done == n_iters:
                return


def test_accuracy(model) -> float:
    model.eval()
    with torch.no_grad():
        right = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    model.train()
    return 100 * right


def train(model, n_iters, lr=0.1, test_every=100):
    """SGD on batches of 100; the test accuracy every test_every iterations."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    curve = {}
    for i, (x, y) in enumerate(batches(n_iters), start=1):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i % test_every == 0:
            curve[i] = test_accuracy(model)
    return curve

# %% [markdown]
# ## Three activations and their slopes
#
# - The *sigmoid* $\sigma(z) = 1/(1 + e^{-z})$ squeezes any number into (0, 1).
# - *tanh*, $\tanh z = 2\sigma(2z) - 1$, is the same S-shape stretched to (−1, 1), centred on 0.
# - The *ReLU* (rectified linear unit), $\max(0, z)$, passes positive numbers unchanged and
#   turns negative ones into 0.
#
# Learning runs on slopes: backpropagation multiplies the gradient by the activation's slope at
# every layer it passes through. The slopes below are computed by autograd (lesson 2), by
# backpropagating through each function at 201 points. The sigmoid's slope is $\sigma(z)(1 -
# \sigma(z))$, at most 0.25, at $z = 0$, and nearly 0 once $|z|$ passes 5: there the unit is
# *saturated*, flat, and passes almost no gradient back. tanh's slope reaches 1 at 0 but
# saturates too. The ReLU's slope is exactly 1 for every positive input, and exactly 0 for
# every negative one.

# %% tags=["plain"] alt="Two panels over z from minus 6 to 6. Left: the three activation functions; the sigmoid rises from 0 to 1, tanh from minus 1 to 1, both S-shaped, and the ReLU is flat at 0 then rises in a straight line. Right: their slopes; the sigmoid's is a low bump peaking at 0.25 at z = 0, tanh's a taller bump peaking at 1, both near 0 beyond plus or minus 4; the ReLU's slope is 0 for negative z and 1 for positive z."
z = torch.linspace(-6, 6, 201, requires_grad=True)
functions = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "ReLU": torch.relu}
slopes = {}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name, f in functions.items():
    (slope,) = torch.autograd.grad(f(z).sum(), z)  # each output depends on its own z only
    slopes[name] = slope
    ax1.plot(z.detach(), f(z).detach(), label=name)
    ax2.plot(z.detach(), slope, label=name)
ax1.set_title("activation")
ax2.set_title("its slope")
for ax in (ax1, ax2):
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_xlabel("z")
    ax.legend()
plt.show()

s = torch.sigmoid(z.detach())
assert torch.allclose(slopes["sigmoid"], s * (1 - s), atol=1e-6)
assert abs(slopes["sigmoid"].max().item() - 0.25) < 1e-6 and slopes["tanh"].max().item() > 0.999
assert slopes["sigmoid"][z.detach().abs() > 5].max() < 0.007  # saturated
assert set(slopes["ReLU"].unique().tolist()) == {0.0, 1.0}

# %% [markdown]
# ## Vanishing gradients
#
# In a deep network the gradient reaches the first layer only after passing back through every
# layer above it, and is multiplied by a slope at each one. With the sigmoid, each pass
# multiplies by at most 0.25. Here are three networks with six hidden layers of 100 units each,
# identical but for the activation, with PyTorch's default initial weights. For one batch of
# 1,000 images we compute the gradient and measure its size, layer by layer: the *norm*
# $\lVert \cdot \rVert$ of each weight matrix's gradient, the square root of the sum of its
# squared entries.

# %% tags=["plain"]
def deep_network(activation, hidden_layers=6, width=100, seed=0):
    torch.manual_seed(seed)
    layers, n_in = [], 784
    for _ in range(hidden_layers):
        layers += [nn.Linear(n_in, width), activation()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, 10)).to(device)


def gradient_norms(model):
    model.zero_grad()
    F.cross_entropy(model(x_train[:1000]), y_train[:1000]).backward()
    return [m.weight.grad.norm().item() for m in model if isinstance(m, nn.Linear)]


activations = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "ReLU": nn.ReLU}
norms = {name: gradient_norms(deep_network(act)) for name, act in activations.items()}
for name, layer_norms in norms.items():
    print(f"{name:8}", " ".join(f"{n:8.1e}" for n in layer_norms), f"  first/last {layer_norms[0] / layer_norms[-1]:.1e}")

# %% [markdown]
# In the sigmoid network, the first layer's gradient is tens of thousands of times smaller
# than the last layer's: the early layers get almost no signal, and barely move. That is the
# *vanishing gradient*. With tanh and ReLU the gradients stay within a factor of ten from top to
# bottom. Trained for 600 iterations, the sigmoid network does not learn at all:

# %% tags=["plain"]
curves = {name: train(deep_network(act), 600) for name, act in activations.items()}
for name, curve in curves.items():
    print(f"{name:8} test accuracy every 100 iterations:", [round(a, 1) for a in curve.values()])

# %% tags=["plain"] alt="Two panels for three networks with six hidden layers, sigmoid, tanh and ReLU. Left: the norm of each layer's weight gradient on a log scale, from layer 1 (nearest the input) to layer 7 (the output layer); the sigmoid line climbs steeply from about 1e-5 at layer 1 to nearly 1 at layer 7, while tanh and ReLU stay within a factor of ten of each other across the layers. Right: the test accuracy every 100 iterations of training; the sigmoid network stays at chance, about 10 percent; tanh climbs past 85 percent; ReLU stays low and starts rising only near the end."
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name in activations:
    ax1.semilogy(range(1, 8), norms[name], "o-", label=name)
    ax2.plot(list(curves[name]), list(curves[name].values()), "o-", label=name)
ax1.set_xlabel("layer (1 = nearest the input)")
ax1.set_ylabel("norm of the weight gradient")
ax2.set_xlabel("iteration")
ax2.set_ylabel("test accuracy (%)")
for ax in (ax1, ax2):
    ax.legend()
fig.tight_layout()
plt.show()

# %% tags=["plain"]
assert norms["sigmoid"][0] / norms["sigmoid"][-1] < 1e-3
assert norms["tanh"][0] / norms["tanh"][-1] > 0.1 and norms["ReLU"][0] / norms["ReLU"][-1] > 0.05
assert max(curves["sigmoid"].values()) < 20  # chance is 10%
assert curves["tanh"][600] > 80

# %% [markdown]
# The deep ReLU network learns, but slowly: 600 iterations leave it far below tanh. Its
# gradients do not vanish; its *signal* does, on the way forward. The next section shows why,
# and the fix.
#
# ## Initialisation: the size of the starting weights
#
# A unit's sum adds up 100 or 784 products. If the weights are too small, each layer's
# outputs are smaller than its inputs, and after a few layers nothing is left of the image;
# too large, and the values grow layer after layer until they overflow or saturate. Either
# way the gradients are useless. A good initialisation keeps the spread of the values about
# the same from layer to layer.
#
# PyTorch's `nn.Linear` draws its weights uniformly between $\pm 1/\sqrt{n_{in}}$ (its
# standard deviation is $1/\sqrt{3 n_{in}}$). For ReLU, which zeroes half of its inputs,
# that is too small: the spread halves at every layer or so. *He* (or *Kaiming*)
# initialisation draws from a normal distribution with standard deviation
# $\sqrt{2/n_{in}}$, the 2 making up for the half that ReLU throws away.
#
# Below, model E (three hidden layers of 100 ReLU units, lesson 4) with four initialisations:
# the classic lesson's normal weights of standard deviation 0.01, PyTorch's default, He, and a
# standard deviation of 1 (biases zero, except for the default). First the standard deviation
# of each hidden layer's output for 1,000 images, before any training:

# %% tags=["plain"]
def set_normal(model, std):
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std(m.in_features))
                m.bias.zero_()
    return model


inits = {
    "std 0.01": lambda net: set_normal(net, lambda n_in: 0.01),
    "PyTorch default": lambda net: net,
    "He: std √(2/n_in)": lambda net: set_normal(net, lambda n_in: (2 / n_in) ** 0.5),
    "std 1": lambda net: set_normal(net, lambda n_in: 1.0),
}


def layer_spreads(model):
    spreads, h = [], x_train[:1000]
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, nn.ReLU):
                spreads.append(h.std().item())
    return spreads


spreads = {name: layer_spreads(init(deep_network(nn.ReLU, 3))) for name, init in inits.items()}
for name, s in spreads.items():
    print(f"{name:18} output std of hidden layers 1, 2, 3: " + ", ".join(f"{v:.4f}" for v in s))

# %% [markdown]
# At 0.01 the spread shrinks about fifteenfold per layer; at 1 it grows sevenfold; He keeps it
# steady. Now each, trained for 600 iterations:

# %% tags=["plain"]
init_curves = {name: train(init(deep_network(nn.ReLU, 3)), 600) for name, init in inits.items()}
deep_he = train(set_normal(deep_network(nn.ReLU, 6), lambda n_in: (2 / n_in) ** 0.5), 600)
for name, curve in init_curves.items():
    print(f"{name:18} test accuracy every 100 iterations:", [round(a, 1) for a in curve.values()])
print(f"{'6 layers, He':18} test accuracy every 100 iterations:", [round(a, 1) for a in deep_he.values()])

# %% tags=["plain"] alt=["Two panels. Left: the standard deviation of each hidden layer's output in model E before training, log scale, one line per initialisation: std 0.01 falls steeply to about 0.0003 by layer 3; PyTorch default falls gently from 0.1 to 0.03; He stays flat near 0.27; std 1 climbs steeply to several hundred. Right: the test accuracy every 100 iterations during training: std 0.01 and std 1 stay flat at about 11 percent, the default climbs to about 92 percent, and He climbs fastest, to about 94 percent."]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name in inits:
    ax1.semilogy([1, 2, 3], spreads[name], "o-", label=name)
    ax2.plot(list(init_curves[name]), list(init_curves[name].values()), "o-", label=name)
ax1.set_xticks([1, 2, 3])
ax1.set_xlabel("hidden layer")
ax1.set_ylabel("std of its output, before training")
ax2.set_xlabel("iteration")
ax2.set_ylabel("test accuracy (%)")
for ax in (ax1, ax2):
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["plain"]
d, he = spreads["std 0.01"], spreads["He: std √(2/n_in)"]
assert d[2] < d[0] / 50 and spreads["std 1"][2] > spreads["std 1"][0] * 20
assert 0.5 < he[2] / he[0] < 2
assert max(init_curves["std 0.01"].values()) < 20 and max(init_curves["std 1"].values()) < 20
assert init_curves["He: std √(2/n_in)"][600] > init_curves["PyTorch default"][600] > 80
assert deep_he[600] > curves["ReLU"][600] + 20  # the six-layer ReLU network, fixed

# %% [markdown]
# The classic lesson's standard deviation of 0.01 is harmless in a network with one hidden
# layer, but with three it starves the network: nothing learns in 600 iterations. A standard
# deviation of 1 fails the other way. He initialisation makes the six-layer ReLU network of the
# last section learn quickly too.
#
# ## Dead ReLUs
#
# A ReLU unit whose sum $z$ is negative for *every* input outputs 0 for every input. Its slope
# there is 0, so no gradient ever reaches its weights, and it can never recover: it is *dead*.
# Lesson 3 killed almost every unit with a learning rate of 2. But units die in ordinary
# training too, and the tutorial network of lesson 8 (784-128-64-10, trained by mlplab with
# the Adam optimizer) shows some.
#
# *Adam* is an optimizer that, unlike SGD, gives each weight a step of about the learning rate
# whatever the size of its gradient: it divides each gradient by a running estimate of that
# gradient's typical size. Here three runs of that network for 500 iterations: Adam on inputs
# normalised to [−1, 1] (background −1, as `Normalize((0.5,), (0.5,))` makes them), Adam on
# inputs in [0, 1] (background 0), and SGD on [−1, 1]. Every 25 iterations we count the
# first-layer units that output 0 for all of the first 10,000 training images.

# %% tags=["plain"]
def dead_units(layer, x):
    with torch.no_grad():
        return (layer(x) > 0).sum(dim=0) == 0  # (units,): True where no image makes it fire


def watch_deaths(background, optimizer_name, n_iters=500, lr_adam=1e-3, lr_sgd=0.1):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    start = net[0].weight.detach().clone()
    if optimizer_name == "Adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=lr_adam)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=lr_sgd)
    scale = (lambda x: (x - 0.5) / 0.5) if background == -1 else (lambda x: x)
    probe = scale(x_train[:10_000])
    counts = {0: int(dead_units(net[0], probe).sum())}
    for i, (x, y) in enumerate(batches(n_iters, batch_size=256), start=1):
        optimizer.zero_grad()
        F.cross_entropy(net(scale(x)), y).backward()
        optimizer.step()
        if i % 25 == 0:
            counts[i] = int(dead_units(net[0], probe).sum())
    dead = dead_units(net[0], scale(x_train))  # now on all 60,000
    return counts, dead, net[0].weight.detach() - start


runs = {
    "Adam, background −1": watch_deaths(-1, "Adam"),
    "Adam, background 0": watch_deaths(0, "Adam"),
    "SGD, background −1": watch_deaths(-1, "SGD"),
}
for name, (counts, dead, moved) in runs.items():
    print(f"{name:20} dead units at 0, 25, 50, 100, 500 iterations:", [counts[i] for i in (0, 25, 50, 100, 500)], f"(of 128; {int(dead.sum())} on all 60,000 images)")

# %% tags=["plain"] alt="The number of dead first-layer units, out of 128, against the iteration, for three runs. Adam with a background of minus 1 jumps from 0 to about 45 within the first 25 iterations and stays there. Adam with a background of 0 rises only to about 5. SGD with a background of minus 1 stays at 0 throughout."
fig, ax = plt.subplots(figsize=(8, 3.8))
for name, (counts, _, _) in runs.items():
    ax.plot(list(counts), list(counts.values()), "o-", ms=3, label=name)
ax.set_xlabel("iteration")
ax.set_ylabel("dead units in the first layer (of 128)")
ax.legend()
plt.show()

# %% [markdown]
# With Adam and a background of −1, a third of the units die in the first 25 iterations, and
# they never come back. What killed them, if not large steps? Look at how far their weights
# moved:

# %% tags=["plain"]
counts, dead, moved = runs["Adam, background −1"]
largest_move = moved[dead].abs().max(dim=1).values  # each dead unit's largest weight change
summed = moved[dead].sum(dim=1)  # and the sum of all its 784 changes
print(f"dead units: largest change of any one weight, median {largest_move.median():.4f}")
print(f"dead units: sum of their 784 weight changes, median {summed.median():+.2f}")
print(f"live units: largest change of any one weight, median {moved[~dead].abs().max(dim=1).values.median():.4f}")

assert counts[0] == 0 and counts[25] > 20 and counts[500] >= counts[25] - 3  # born alive, died early
assert runs["Adam, background 0"][0][500] < counts[500] / 4
assert runs["SGD, background −1"][0][500] <= 2
assert largest_move.median() < 0.02 and summed.median() > 1.0

# %% [markdown]
# A dead unit's weights barely moved: typically none by more than about 0.01, a tenth of what
# a live unit's weights moved. But they moved *together*: their sum rose by more than 3. On the background, where
# every one of about 600 pixels is −1, those small rises add up to a drop of more than 3 in
# the unit's sum, and that is enough to push it below 0 for every image. Adam does this
# because it moves each weight by about the learning rate in the direction of its gradient's
# sign, however faint the gradient, and the background weights of a unit all see the same
# input, −1, so their gradients share a sign. With a background of 0, the background weights
# get a gradient of exactly 0 (their input is 0) and cannot move; SGD moves each weight in
# proportion to its own small gradient. Both keep almost every unit alive.
#
# So dead units are not a sign of a too-large step under every optimizer: here they come from
# Adam's equal-sized steps meeting a constant background of −1. The cures: scale inputs so
# the background is 0 (or subtract the dataset's mean), use SGD, or use a *leaky* ReLU,
# $\max(0.01z, z)$, which keeps a small slope for negative sums (exercise 2).
#
# ## In mlplab
#
# mlplab's `init` setting covers these initialisations: `default`, `normal:STD`, `xavier`
# (Glorot, for tanh and sigmoid) and `kaiming` (He). Model E with `normal:0.01` is stuck as
# above (`mlplab train --preset e --init normal:0.01 ...`), and with `kaiming` it learns:

# %%
config = mlplab.TrainConfig(
    preset="e", optimizer="sgd", lr=0.1, schedule="constant", batch_size=100,
    iterations=600, eval_every=600, normalization="none", seed=0,
)
stuck = mlplab.train(config.replace(init="normal:0.01"), mnist).test.accuracy
learns = mlplab.train(config.replace(init="kaiming"), mnist).test.accuracy
print(f"model E after 600 iterations: init normal:0.01 {stuck:.2f}%, init kaiming {learns:.2f}%")
assert stuck < 20 and learns > 90

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment activations`, or with a lab running,
# http://127.0.0.1:8008/?experiment=activations) trains the deep sigmoid, tanh and ReLU networks side by side: the sigmoid's curve stays flat (and `--experiment initialisation` starts model E from four weight scales). Under *Weights and histograms* it draws the share of dead ReLUs in each layer as a network trains, so you can watch the first 25 iterations of the Adam run above happen. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Check with autograd that tanh's slope is $1 - \tanh^2 z$, and that
# $\tanh z = 2\sigma(2z) - 1$.

# %% tags=["solution"]
zz = torch.linspace(-4, 4, 81, requires_grad=True)
(slope,) = torch.autograd.grad(torch.tanh(zz).sum(), zz)
assert torch.allclose(slope, 1 - torch.tanh(zz.detach()) ** 2, atol=1e-6)
assert torch.allclose(torch.tanh(zz), 2 * torch.sigmoid(2 * zz) - 1, atol=1e-6)
print("tanh' = 1 - tanh² and tanh z = 2σ(2z) - 1, at 81 points")

# %% [markdown]
# **2.** Run the Adam, background −1 experiment with `nn.LeakyReLU(0.01)` in place of each
# `nn.ReLU`. How many units are dead now, and does every first-layer unit get a gradient?

# %% tags=["solution"]
torch.manual_seed(0)
leaky = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.01), nn.Linear(128, 64), nn.LeakyReLU(0.01), nn.Linear(64, 10)).to(device)
optimizer = torch.optim.Adam(leaky.parameters(), lr=1e-3)
for x, y in batches(500, batch_size=256):
    optimizer.zero_grad()
    F.cross_entropy(leaky((x - 0.5) / 0.5), y).backward()
    optimizer.step()
leaky.zero_grad()
F.cross_entropy(leaky((x_train[:1000] - 0.5) / 0.5), y_train[:1000]).backward()
reached = (leaky[0].weight.grad.abs().sum(dim=1) > 0).sum().item()
print(f"first-layer units with a nonzero gradient: {reached} of 128")
assert reached == 128  # a leaky unit always passes some gradient: none can die

# %% [markdown]
# **3.** *Xavier* (Glorot) initialisation, `nn.init.xavier_uniform_`, is meant for tanh: it
# draws uniformly within $\pm\sqrt{6/(n_{in} + n_{out})}$. In a tanh network of six hidden
# layers, compare the spread of the last hidden layer's output under Xavier and under a
# standard deviation of 0.01.

# %% tags=["solution"]
def tanh_spreads(init):
    net = deep_network(nn.Tanh, 6)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                init(m.weight)
                m.bias.zero_()
    spreads, h = [], x_train[:1000]
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, nn.Tanh):
                spreads.append(h.std().item())
    return spreads


xavier = tanh_spreads(nn.init.xavier_uniform_)
small = tanh_spreads(lambda w: w.normal_(0.0, 0.01))
print("Xavier:  ", [f"{v:.3f}" for v in xavier])
print("std 0.01:", [f"{v:.1e}" for v in small])
assert xavier[-1] > 0.1 and small[-1] < 1e-6

# %% [markdown]
# Next, [lesson 6](06_softmax_cross_entropy.ipynb) follows the logits to the loss: softmax,
# cross-entropy, and the gradient that starts the backward pass, derived by hand.
