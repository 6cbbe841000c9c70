# %% [markdown]
# # 1. From tensors to a network
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# A feed-forward network is a few matrix products with a simple function between them. In this
# lesson you write one four times: from bare tensors with `torch.mm`, as an `nn.Module` class,
# with `torch.nn.functional`, and as a named `nn.Sequential`. Each version is checked against the
# previous one, number for number. Nothing is trained yet, so the network's guesses are
# random; lessons 2 and 3 teach it.
#
# What you will meet: tensors and their shapes, flattening an image, weights and biases,
# broadcasting, the sigmoid and softmax functions, `nn.Module` with `__init__` and `forward`,
# why you call `model(x)` and not `model.forward(x)`, indexing a `Sequential`, and counting
# parameters.

# %% [markdown]
# ## Setting up
#
# A *tensor* is PyTorch's array: numbers laid out in a grid of any number of dimensions, with
# a `shape` (the size of each dimension), a `dtype` (the kind of number) and a `device` (the
# memory it lives in: the CPU's, or a GPU's). Every lesson picks its device once, here, so that
# the same notebook runs on a CUDA or Apple (MPS) GPU when there is one. Nothing in this lesson
# is heavy, but the habit costs one line.

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
# ## MNIST as tensors
#
# MNIST is 70,000 photographs of handwritten digits, 28×28 pixels, each with its label: 60,000
# for training and 10,000 for testing. The classic tutorials load it through torchvision;
# here one call of mlplab's reads the original files (downloading them the first time) and
# hands back plain tensors. This cell is the only mlplab in the lesson until the last section.

# %% tags=["data"]
import mlplab

mnist = mlplab.load_dataset("mnist")
train_images, train_labels = mnist.train.x, mnist.train.y  # (60000, 28, 28) uint8, (60000,)
test_images, test_labels = mnist.test.x, mnist.test.y  # (10000, 28, 28) uint8, (10000,)

# %% tags=["plain"]
print("train_images", tuple(train_images.shape), train_images.dtype)
print("train_labels", tuple(train_labels.shape), train_labels.dtype)
print("pixel values from", int(train_images.min()), "to", int(train_images.max()))
assert train_images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)
assert train_images.dtype == torch.uint8 and train_labels.dtype == torch.int64

# %% [markdown]
# Each image is a 28×28 grid of `uint8` numbers: 0 is black, 255 is white. Here are the first
# sixteen, with their labels.

# %% tags=["plain"] alt="Sixteen handwritten digits from MNIST's training set in a 2 by 8 grid, white strokes on black, each titled with its label: 5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7."
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for i, ax in enumerate(axes.flat):
    ax.imshow(train_images[i], cmap="gray")
    ax.set_title(f"label {int(train_labels[i])}", fontsize=9)
    ax.axis("off")
plt.show()
assert train_labels[:16].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7]

# %% [markdown]
# ## From pixels to inputs
#
# A network wants floating-point numbers near zero, not bytes. The classic tutorials get there
# with two transforms: `ToTensor()` divides each pixel by 255, giving values in [0, 1], and
# `Normalize((0.5,), (0.5,))` then subtracts 0.5 and divides by 0.5. Together they map a pixel
# $p$ to
#
# $$x = \frac{p / 255 - 0.5}{0.5},$$
#
# so black (0) becomes −1, white (255) becomes +1, and the middle grey 128 becomes
# $(128/255 - 0.5)/0.5 = 1/255 \approx 0.0039$. We write the two steps as one function on a whole batch.

# %% tags=["plain"]
def to_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1], as ToTensor then Normalize((0.5,), (0.5,))."""
    return (images.float() / 255 - 0.5) / 0.5


pixels = torch.tensor([0, 128, 255], dtype=torch.uint8)
print("pixels 0, 128, 255 become", to_inputs(pixels).tolist())
assert torch.allclose(to_inputs(pixels), torch.tensor([-1.0, 1 / 255, 1.0]), atol=1e-5)

# %% [markdown]
# ## Flattening
#
# In a *fully connected* (or *dense*) network, every input feeds every unit of the first layer,
# and the layer sees its input as one long row of numbers. So each 28×28 image becomes a row
# of 784 pixels, read row by row: this is *flattening*. For a batch of 64 images,
# `view(64, 784)` gives a `(64, 784)` tensor without copying any data; `view(64, -1)` lets
# PyTorch work out the 784 itself.

# %% tags=["plain"]
images = train_images[:64]  # a batch: (64, 28, 28)
labels = train_labels[:64]
x = to_inputs(images).view(len(images), -1).to(device)  # (64, 784)
print(tuple(images.shape), "->", tuple(x.shape))
assert x.shape == (64, 784)
assert torch.equal(x[5].view(28, 28).cpu(), to_inputs(images[5]))  # row 5 is image 5

# %% [markdown]
# ## The network we build
#
# Some words first. A *unit* (or neuron) takes every number of the layer before it, multiplies
# each by its own *weight*, adds them up with one more number, its *bias*, and passes the sum
# through an *activation function*. A *layer* is many units side by side; the ones between the
# input and the output are *hidden* layers. Our network has 784 inputs, one hidden layer of 256
# units, and 10 output units, one per digit.
#
# The hidden activation is the *sigmoid*, written σ:
#
# $$\sigma(z) = \frac{1}{1 + e^{-z}},$$
#
# which squeezes any number into (0, 1): large negative $z$ gives nearly 0, large positive
# nearly 1, and σ(0) = 0.5. The ten outputs get no activation: they are *logits*, any real
# numbers, the larger the more the network favours that digit.
#
# The drawing shows the network's shape (not all 784 inputs and 256 units fit, so ten of each
# are drawn). Every line is one weight.

# %% alt="A diagram of the network: three columns of circles, labelled 784 inputs, 256 hidden and 10 logits. Ten circles stand for each of the two wide layers. Grey lines join every circle of one column to every circle of the next."
from mlplab.viz.diagram import draw_network

fig, ax = plt.subplots(figsize=(6, 3.6))
drawn = draw_network(ax, [784, 256, 10])
plt.show()
assert [len(units) for units in drawn] == [10, 10, 10]

# %% [markdown]
# ## 1. Bare tensors and torch.mm
#
# For a batch, the whole layer is one matrix product. With the batch as the rows of $X$
# (shape `(64, 784)`), the weights $W_1$ as a `(784, 256)` matrix and the bias $b_1$ as 256
# numbers, the hidden layer is $H = \sigma(X W_1 + b_1)$ and the logits are
# $Z = H W_2 + b_2$.
#
# How does a `(64, 256)` product add a `(256,)` bias? By *broadcasting*: when shapes differ,
# PyTorch lines them up from the right, and a missing dimension (or one of size 1) is
# repeated to match. So the same bias row is added to each of the 64 rows.
#
# The weights are drawn at random from a standard normal distribution (mean 0, std 1), as the
# classic lesson draws them. `torch.manual_seed` fixes the draw, so every run of this lesson
# gets the same numbers.

# %% tags=["plain"]
torch.manual_seed(0)
W1 = torch.randn(784, 256, device=device)
b1 = torch.randn(256, device=device)
W2 = torch.randn(256, 10, device=device)
b2 = torch.randn(10, device=device)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-z))


h = sigmoid(torch.mm(x, W1) + b1)  # (64, 784) @ (784, 256) + (256,) -> (64, 256)
z = torch.mm(h, W2) + b2  # (64, 256) @ (256, 10) + (10,) -> (64, 10)
print("hidden", tuple(h.shape), "logits", tuple(z.shape))
assert h.shape == (64, 256) and z.shape == (64, 10)
assert torch.allclose(sigmoid(z), torch.sigmoid(z))  # ours is PyTorch's

# %% [markdown]
# ## Softmax, and a broadcasting trap
#
# To read the ten logits as probabilities, *softmax* makes them positive with the exponential
# and divides each by their sum, so that each row adds up to 1:
#
# $$\mathrm{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j} e^{z_j}}.$$
#
# The sum runs across each row, `dim=1`, and gives one number per image: shape `(64,)`. Divide
# the `(64, 10)` exponentials by it as it is, and broadcasting lines the shapes up from the
# right: 10 against 64. They do not match, and PyTorch refuses.

# %% tags=["plain"]
e = torch.exp(z)
row_sums = e.sum(dim=1)  # (64,)
try:
    e / row_sums
    refused = None
except RuntimeError as error:
    refused = str(error)
print("(64, 10) / (64,):", refused)
assert refused is not None and "must match" in refused

# %% [markdown]
# Worse: with a batch of exactly 10 images, the shapes `(10, 10)` and `(10,)` do line up, and
# the division runs without a word. It divides each *column* by a row's sum, and the rows no
# longer add up to 1. The fix is to keep the summed dimension, `(64, 1)`, so that each row is
# divided by its own sum: `sum(dim=1, keepdim=True)`, or `.view(-1, 1)` after the sum.

# %% tags=["plain"]
e10 = e[:10]
silent = e10 / e10.sum(dim=1)  # runs, but is wrong
print("batch of 10, wrong division: row sums", silent.sum(dim=1)[:3].tolist())
assert not torch.allclose(silent.sum(dim=1), torch.ones(10, device=device))


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return e / e.sum(dim=1, keepdim=True)  # (B, 10) / (B, 1)


probs = softmax(z)
print("with keepdim: row sums", probs.sum(dim=1)[:3].tolist())
assert torch.allclose(probs.sum(dim=1), torch.ones(64, device=device))
assert torch.allclose(probs, torch.softmax(z, dim=1))

# %% [markdown]
# (Written this way, `exp` overflows once a logit passes about 88 in float32; lesson 6 shows
# the overflow and the one-line cure that `torch.softmax` uses.)
#
# ## What a random network says
#
# The classic tutorials show an untrained network's probabilities as almost flat: about 0.1
# for every digit. Ours are not. With weights of standard deviation 1, the sum over 784 inputs
# is large, the sigmoid is pushed to 0 or 1, the logits spread over tens of units, and softmax
# turns that into near certainty for one digit, chosen at random. An untrained network is only
# flat when its first weights are small, which is what PyTorch's layers give you by default,
# and what the classic lesson sets by hand with a standard deviation of 0.01. The middle
# panel is this network; the right one is the same network with those small weights, made
# below.

# %% tags=["plain"]
torch.manual_seed(1)
W1_small = torch.randn(784, 256, device=device) * 0.01
W2_small = torch.randn(256, 10, device=device) * 0.01
zero1, zero2 = torch.zeros(256, device=device), torch.zeros(10, device=device)
probs_small = softmax(torch.mm(sigmoid(torch.mm(x, W1_small) + zero1), W2_small) + zero2)

confident = probs.max(dim=1).values
print(f"std 1:    median largest probability {confident.median():.3f}")
print(f"std 0.01: probabilities between {probs_small.min():.4f} and {probs_small.max():.4f}")
assert confident.median() > 0.9
assert (probs_small - 0.1).abs().max() < 0.03

# %% tags=["plain"] alt=["Three panels. Left: the first training image, a handwritten 5. Middle: a horizontal bar chart of the ten class probabilities from the network with standard-normal weights; one digit's bar reaches almost 1 and the other nine are near 0. Right: the same chart for the network with weights of standard deviation 0.01; all ten bars are close to 0.1."]
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(10, 3))
ax0.imshow(images[0], cmap="gray")
ax0.set_title(f"label {int(labels[0])}")
ax0.axis("off")
for ax, p, title in [(ax1, probs[0], "weights ~ N(0, 1)"), (ax2, probs_small[0], "weights ~ N(0, 0.01²)")]:
    ax.barh(range(10), p.cpu())
    ax.set_yticks(range(10))
    ax.set_xlim(0, 1.05)
    ax.set_title(title)
    ax.set_xlabel("probability")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The same network as an nn.Module
#
# Writing every weight by hand does not scale to many layers. PyTorch's `nn` package holds
# the pieces, and `nn.Module` is the base class for anything with parameters. A network is a
# class with two methods:
#
# - `__init__` creates the layers. It must call `super().__init__()` first, which sets up the
#   machinery that lets the module find its layers and their parameters. Each layer assigned
#   to `self` is *registered*: its weights appear in `parameters()`, move with `.to(device)`,
#   and are saved with the model.
# - `forward(x)` says what to compute from an input batch: here, the hidden layer, the
#   sigmoid, the output layer, the softmax.
#
# `nn.Linear(784, 256)` is one layer of 256 units with 784 inputs. It creates its own weight
# and bias and computes `x @ weight.T + bias`: it stores the weight as `(out, in)`,
# `(256, 784)`, the transpose of our `W1`. Copying our tensors in (transposed) gives a module
# with exactly our weights, and the same outputs up to float32 rounding: the two add up
# their 784 products in a different order, and differ by a few millionths.

# %% tags=["plain"]
class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)
        self.sigmoid = nn.Sigmoid()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.sigmoid(self.hidden(x))
        return self.softmax(self.output(x))


net = Network().to(device)
with torch.no_grad():  # copying into parameters is not a step to differentiate (lesson 2)
    net.hidden.weight.copy_(W1.t())
    net.hidden.bias.copy_(b1)
    net.output.weight.copy_(W2.t())
    net.output.bias.copy_(b2)

print(net)
probs_module = net(x)
assert torch.allclose(probs_module, probs, atol=1e-5)
print("nn.Module == bare tensors:", torch.allclose(probs_module, probs, atol=1e-5))

# %% [markdown]
# ## Call the model, not its forward
#
# We wrote `net(x)`, not `net.forward(x)`. Both compute the same numbers, but calling the
# module runs PyTorch's own code around `forward`: *hooks*, functions that other code attaches
# to a module to watch or change what flows through it (mlplab's lab uses them to show each
# layer's values). Calling `forward` yourself skips the module's own hooks silently. Here a
# hook on the network counts the calls it sees.

# %% tags=["plain"]
calls = []
handle = net.register_forward_hook(lambda module, inputs, output: calls.append(1))
same = torch.equal(net(x), net.forward(x))  # one call, one forward
net(x)  # a second call
handle.remove()
print(f"outputs equal: {same}; 2 calls and 1 forward, and the hook saw {len(calls)}")
assert same and len(calls) == 2  # the forward went unseen

# %% [markdown]
# ## 3. With torch.nn.functional
#
# The sigmoid and softmax hold no parameters, so they need not be layers: the module
# `torch.nn.functional`, imported as `F`, has them as plain functions. Only the layers with
# weights remain attributes. `load_state_dict` copies the first module's parameters into this
# one, matching them by name (`hidden.weight`, `output.bias`, ...); the activations have no
# parameters, so the names still match.

# %% tags=["plain"]
class NetworkF(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        return F.softmax(self.output(x), dim=1)


net_f = NetworkF().to(device)
net_f.load_state_dict(net.state_dict())
print("parameters by name:", list(net.state_dict()))
assert torch.allclose(net_f(x), probs, atol=1e-5)

# %% [markdown]
# ## 4. A named nn.Sequential
#
# When `forward` is a plain chain, `nn.Sequential` writes it for you: it passes the input
# through its layers in order. Given an `OrderedDict`, it also names each layer. We use the
# names mlplab's networks use (`flatten`, `fc1` for the first fully connected layer, `act1`,
# `fc2`), which pays off at the end. `nn.Flatten()` turns images `(64, 28, 28)` into rows
# `(64, 784)`, so this version takes images directly.

# %% tags=["plain"]
from collections import OrderedDict

seq = nn.Sequential(
    OrderedDict(
        [
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(784, 256)),
            ("act1", nn.Sigmoid()),
            ("fc2", nn.Linear(256, 10)),
            ("softmax", nn.Softmax(dim=1)),
        ]
    )
).to(device)
with torch.no_grad():
    seq.fc1.weight.copy_(net.hidden.weight)
    seq.fc1.bias.copy_(net.hidden.bias)
    seq.fc2.weight.copy_(net.output.weight)
    seq.fc2.bias.copy_(net.output.bias)

print(seq)
image_batch = to_inputs(images).to(device)  # (64, 28, 28): Flatten does the rest
assert torch.allclose(seq(image_batch), probs, atol=1e-5)

# %% [markdown]
# A `Sequential` can be indexed like a list, by position or by name, and sliced: `seq[1]` is
# the layer `seq.fc1`, and `seq[:3]` is a new `Sequential` of the first three layers (flatten,
# fc1, act1) that shares their weights, a handy way to look at a hidden layer's output.

# %% tags=["plain"]
print("seq[1]:", seq[1])
assert seq[1] is seq.fc1
first_half = seq[:3]
assert torch.allclose(first_half(image_batch), h, atol=1e-5)  # the hidden layer H
print("seq[:3] gives the hidden layer:", tuple(first_half(image_batch).shape))

# %% [markdown]
# ## Setting the weights yourself
#
# PyTorch initialises each `nn.Linear` with small random weights; lesson 5 shows why the
# starting weights matter so much. To choose them yourself, change the tensors in place inside
# `torch.no_grad()` (the classic lesson writes `weight.data`, an older way to the same tensor).
# Here: biases to zero, weights from a normal distribution with standard deviation 0.01.

# %% tags=["plain"]
generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    for layer in (seq.fc1, seq.fc2):
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.01)
        layer.bias.zero_()
probs_init = seq(image_batch)
print(f"probabilities between {probs_init.min():.4f} and {probs_init.max():.4f}")
assert (probs_init - 0.1).abs().max() < 0.03

# %% [markdown]
# ## Counting parameters
#
# A layer with $n_{in}$ inputs and $n_{out}$ units has $n_{in} n_{out}$ weights and $n_{out}$
# biases. So this network has $784 \cdot 256 + 256 + 256 \cdot 10 + 10 = 203{,}530$
# parameters. `named_parameters()` lists each tensor with its name and shape.

# %% tags=["plain"]
by_hand = 784 * 256 + 256 + 256 * 10 + 10
for name, p in seq.named_parameters():
    print(f"{name:11} {str(tuple(p.shape)):11} {p.numel():>8,}")
counted = sum(p.numel() for p in seq.parameters())
print(f"{'total':23} {counted:>8,}")
assert counted == by_hand == 203_530

# %% [markdown]
# ## The same network in mlplab
#
# mlplab describes a network in one line, its *spec*: the layer sizes from input to output
# joined by `-`, then options after a colon. `784-256-10:sigmoid` is the network above.
# `mlplab.build_model` makes it as an `nn.Sequential` with the names we chose, so our weights
# load straight into it. One difference: mlplab's networks end with the logits and have no
# softmax layer, because the loss function takes logits (lesson 6) and probabilities are only
# needed where someone reads them. The softmax layer has no parameters, so the names match.

# %% alt="A diagram of mlplab's 784-256-10 sigmoid network after its weights were set to small random numbers: ten of the 784 inputs, ten of the 256 hidden units and the ten logits, each unit shaded by its value for the first training image, with each drawn unit's three strongest incoming weights drawn red when positive and blue when negative."
model = mlplab.build_model("784-256-10:sigmoid").to(device)
print(model)
model.load_state_dict(seq.state_dict())
with torch.no_grad():
    probs_mlplab = F.softmax(model(image_batch), dim=1)
assert torch.allclose(probs_mlplab, probs_init, atol=1e-5)
assert sum(p.numel() for p in model.parameters()) == 203_530

fig, ax = plt.subplots(figsize=(6, 3.6))
draw_network(ax, model.cpu(), x=image_batch[0].cpu())
plt.show()

# %% [markdown]
# mlplab's `init_weights` sets weights the way we just did (here `normal:0.01`, zero biases),
# and from a generator in the same state it draws the very same numbers. And `mlplab inspect`
# prints a spec's parameters from the command line:
#
# ```
# mlplab inspect 784-256-10:sigmoid
# ```

# %%
fresh = mlplab.build_model("784-256-10:sigmoid")
mlplab.init_weights(fresh, "normal:0.01", generator=torch.Generator().manual_seed(1))
assert torch.equal(fresh.fc1.weight, seq.fc1.weight.cpu())
assert torch.equal(fresh.fc2.weight, seq.fc2.weight.cpu())
print("init_weights('normal:0.01') == our loop: identical weights")

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment models-a-e`, or with a lab running,
# http://127.0.0.1:8008/?experiment=models-a-e) draws a network like the one above for a real input while it learns, every unit coloured by its value and every line one of its strongest weights; hover a first-layer unit to see its 784 weights as a picture. This experiment trains the tutorial's models A to E side by side. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Write the classic tutorial's second network as an `nn.Module` class: 784 inputs, a
# hidden layer of 128 ReLU units (the ReLU is $\max(0, z)$: `F.relu`), one of 64 ReLU units,
# and 10 outputs with a softmax, with the layers named `fc1`, `fc2`, `fc3`. Check the output's
# shape and its row sums on our batch, and that it has as many parameters as mlplab's
# `784-128-64-10:relu`.

# %% tags=["solution"]
class TwoHidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.softmax(self.fc3(x), dim=1)


two = TwoHidden().to(device)
out = two(x)
n_params = sum(p.numel() for p in two.parameters())
print(tuple(out.shape), n_params)
assert out.shape == (64, 10)
assert torch.allclose(out.sum(dim=1), torch.ones(64, device=device))
assert n_params == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10 == 109_386
assert n_params == sum(p.numel() for p in mlplab.build_model("784-128-64-10:relu").parameters())

# %% [markdown]
# **2.** A layer always works on a batch. Run `seq` on the single image `images[3]`: what shape
# must it have, and what shape comes out? (Give it a batch dimension of 1 with `unsqueeze(0)`.)

# %% tags=["solution"]
one = to_inputs(images[3]).unsqueeze(0).to(device)  # (28, 28) -> (1, 28, 28)
out = seq(one)
print(tuple(one.shape), "->", tuple(out.shape))
assert out.shape == (1, 10)
assert torch.allclose(out[0], seq(image_batch)[3], atol=1e-5)  # as in the batch

# %% [markdown]
# **3.** Write the softmax with `.view(-1, 1)` instead of `keepdim=True`, and check that it
# agrees with `torch.softmax` on a batch of 10 and on a batch of 64.

# %% tags=["solution"]
def softmax_view(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return e / e.sum(dim=1).view(-1, 1)


for batch in (z[:10], z):
    assert torch.allclose(softmax_view(batch), torch.softmax(batch, dim=1))
print("softmax with view(-1, 1) == torch.softmax for batches of 10 and 64")

# %% [markdown]
# Next, [lesson 2](02_autograd.ipynb) asks how a network learns: where the gradients come from,
# and what a step of gradient descent does.
