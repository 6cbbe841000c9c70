# %% [markdown]
# # From tensors to a network
#
# A feed-forward network is two things: matrix products and a nonlinearity between them. In
# this lesson we write one four times over, from plain tensors to an `nn.Sequential`, and
# check at every step that the new version computes exactly what the old one did. Then we
# build the same network from a one-line mlplab spec and count its parameters six ways.
#
# Nothing is trained here: the networks are random, and their guesses are no better than
# chance. Lesson 2 trains them.

# %%
import re
import subprocess
import sys
from collections import OrderedDict

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import mlplab
from mlplab.nn.model import count_parameters

# %% [markdown]
# ## A batch of real MNIST digits
#
# `mlplab.load_dataset` reads the MNIST files (and downloads them the first time). Each split
# is one `uint8` tensor of images, `(N, 28, 28)`, and one tensor of labels. The classic
# tutorials turn pixels into inputs with `transforms.ToTensor()` and
# `transforms.Normalize((0.5,), (0.5,))`: scale to [0, 1], subtract 0.5, divide by 0.5.
# `mlplab.Normalization(0.5, 0.5)` is that transform, and its `apply` also flattens each
# image into a row of 784 numbers, the shape a fully connected layer wants.

# %%
data = mlplab.load_dataset("mnist")
images, labels = data.train.x[:64], data.train.y[:64]  # (64, 28, 28) uint8, (64,)
features = mlplab.Normalization(0.5, 0.5).apply(images)  # (64, 784) float32 in [-1, 1]

print("images  ", tuple(images.shape), images.dtype)
print("features", tuple(features.shape), features.dtype)
print(f"pixel range after normalising: {features.min():.1f} to {features.max():.1f}")
assert features.shape == (64, 784)
assert features.min() == -1.0 and features.max() == 1.0

plt.figure(figsize=(2.5, 2.5))
plt.imshow(images[0], cmap="gray")
plt.title(f"label {int(labels[0])}")
plt.axis("off")
plt.show()

# %% [markdown]
# ## 1. Raw tensors and `torch.mm`
#
# The network has 784 inputs, one hidden layer of 256 sigmoid units and 10 outputs, one per
# digit. Its parameters are two weight matrices and two bias vectors, drawn at random as the
# tutorial draws them. The forward pass is
#
# $$h = \sigma(x W_1 + b_1), \qquad z = h W_2 + b_2,$$
#
# where $x$ is a batch of rows, so $x W_1$ is `torch.mm(features, W1)`: `(64, 784) @ (784,
# 256)`. The outputs $z$ are *logits*, any real numbers; softmax turns each row into
# probabilities that are positive and add up to 1:
# $\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}$.

# %%
torch.manual_seed(0)
W1 = torch.randn(784, 256)
b1 = torch.randn(256)
W2 = torch.randn(256, 10)
b2 = torch.randn(10)


def sigmoid(z):
    return 1 / (1 + torch.exp(-z))


def softmax(z):
    return torch.exp(z) / torch.sum(torch.exp(z), dim=1).view(-1, 1)


h = sigmoid(torch.mm(features, W1) + b1)  # (64, 784) @ (784, 256) -> (64, 256)
logits_raw = torch.mm(h, W2) + b2  # (64, 256) @ (256, 10) -> (64, 10)
probs_raw = softmax(logits_raw)

print("logits", tuple(logits_raw.shape), "probabilities", tuple(probs_raw.shape))
print("row sums:", probs_raw.sum(dim=1)[:5])
assert torch.allclose(probs_raw.sum(dim=1), torch.ones(64))

# %% [markdown]
# ## Why the nonlinearity
#
# Without the sigmoid, the two layers would collapse into one,
#
# $$(x W_1 + b_1) W_2 + b_2 = x (W_1 W_2) + (b_1 W_2 + b_2),$$
#
# a single linear map from 784 numbers to 10, however many layers we stacked. The activation
# between them is what lets depth add anything. The tutorials use three: the sigmoid
# $\sigma(z) = 1 / (1 + e^{-z})$, $\tanh z = 2\sigma(2z) - 1$ (the same S-shape, centred
# on 0) and the ReLU $\max(0, z)$.

# %%
x64, V1, c1, V2, c2 = (t.double() for t in (features, W1, b1, W2, b2))  # float64
two_linear = torch.mm(torch.mm(x64, V1) + c1, V2) + c2
one_linear = torch.mm(x64, torch.mm(V1, V2)) + (torch.mm(c1.view(1, -1), V2) + c2)
largest = (two_linear - one_linear).abs().max().item()
print(f"two linear layers vs one, in float64: largest difference {largest:.1e}")
assert largest < 1e-9

z = torch.linspace(-5, 5, 201)
assert torch.allclose(sigmoid(z), torch.sigmoid(z))
assert torch.allclose(torch.tanh(z), 2 * torch.sigmoid(2 * z) - 1, atol=1e-6)
assert torch.equal(torch.relu(z), z.clamp(min=0))

plt.figure(figsize=(5, 3))
for name, f in [("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("ReLU", torch.relu)]:
    plt.plot(z, f(z), label=name)
plt.axhline(0, color="gray", lw=0.5)
plt.axvline(0, color="gray", lw=0.5)
plt.ylim(-1.2, 2)
plt.xlabel("z")
plt.legend()
plt.show()

# %% [markdown]
# (Computing softmax this way overflows once a logit passes about 88 in float32; lesson 3
# shows the overflow and the one-line fix that `torch.softmax` applies.)
#
# ## 2. The same network as an `nn.Module`
#
# `nn.Linear(784, 256)` holds a weight and a bias and computes `x @ weight.T + bias`: it
# stores its weight as `(out, in)`, `(256, 784)`, the transpose of our `W1`. Copying our
# tensors into the layers, transposed, gives a module with the very same weights.


# %%
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


net = Network()
with torch.no_grad():  # copying into parameters is not a step autograd should record
    net.hidden.weight.copy_(W1.t())
    net.hidden.bias.copy_(b1)
    net.output.weight.copy_(W2.t())
    net.output.bias.copy_(b2)

print(net)
probs_module = net(features)
assert torch.allclose(probs_module, probs_raw, atol=1e-6)
print("nn.Module output == raw tensors:", torch.allclose(probs_module, probs_raw, atol=1e-6))

# %% [markdown]
# ## 3. With `torch.nn.functional`
#
# The sigmoid and the softmax hold no parameters, so they need not be modules:
# `torch.nn.functional` (imported as `F`) has them as functions. Only the layers with
# weights stay as attributes. We load the first module's weights into this one with
# `load_state_dict`, which matches parameters by name (`hidden.weight`, `output.bias`, ...).


# %%
class NetworkF(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        return F.softmax(self.output(x), dim=1)


net_f = NetworkF()
net_f.load_state_dict(net.state_dict())
probs_f = net_f(features)
assert torch.allclose(probs_f, probs_raw, atol=1e-6)
print("F version == raw tensors:", torch.allclose(probs_f, probs_raw, atol=1e-6))

# %% [markdown]
# ## 4. An `nn.Sequential` with named layers
#
# When the forward pass is a plain chain, `nn.Sequential` writes it for us. Given an
# `OrderedDict`, it names each layer, and the names become the parameters' names. We use the
# names mlplab's own networks use (`flatten`, `fc1`, `act1`, `fc2`), which will pay off
# below. `nn.Flatten` turns `(64, 1, 28, 28)` images into `(64, 784)` rows, so this version
# takes images directly; rows of 784 pass through it unchanged.

# %%
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
)
with torch.no_grad():
    seq.fc1.weight.copy_(net.hidden.weight)
    seq.fc1.bias.copy_(net.hidden.bias)
    seq.fc2.weight.copy_(net.output.weight)
    seq.fc2.bias.copy_(net.output.bias)

print(seq)
print([name for name, _ in seq.named_parameters()])
image_batch = features.view(64, 1, 28, 28)  # the images again, as (B, 1, 28, 28)
probs_seq = seq(image_batch)
assert torch.allclose(probs_seq, probs_raw, atol=1e-6)
print("nn.Sequential == raw tensors:", torch.allclose(probs_seq, probs_raw, atol=1e-6))

# %% [markdown]
# Four ways of writing it, one function. The network is random, so its "prediction" for each
# image means nothing yet:

# %%
print("predicted:", probs_seq.argmax(dim=1)[:16].tolist())
print("labels:   ", labels[:16].tolist())

# %% [markdown]
# ## Custom initialisation
#
# PyTorch initialises each `nn.Linear` with small uniform weights (bound
# $1/\sqrt{\text{fan in}}$); the tutorial then shows how to set them yourself, here zero
# biases and weights from a normal distribution with standard deviation 0.01. Parameters are
# changed in place, under `torch.no_grad()`.
#
# With weights that small, every logit is close to 0, so every class gets a probability close
# to 1/10.

# %%
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for layer in (seq.fc1, seq.fc2):
        layer.weight.normal_(0.0, 0.01, generator=g)
        layer.bias.zero_()

probs_small = seq(image_batch)
print(f"probabilities range from {probs_small.min():.4f} to {probs_small.max():.4f}")
assert (probs_small - 0.1).abs().max() < 0.03

# %% [markdown]
# mlplab names this scheme `normal:0.01` (`mlplab train --init normal:0.01`), and
# `mlplab.init_weights` applies it to one of its networks. Given a generator in the same
# state, it draws the very same numbers, layer by layer:

# %%
mine = mlplab.build_model("784-256-10:sigmoid")
mlplab.init_weights(mine, "normal:0.01", generator=torch.Generator().manual_seed(1))
assert torch.equal(mine.fc1.weight, seq.fc1.weight) and torch.equal(mine.fc2.bias, seq.fc2.bias)
print("mlplab.init_weights 'normal:0.01' == the loop above: identical tensors")

# %% [markdown]
# ## mlplab's network from a spec
#
# mlplab describes a network in one line: the sizes from input to output, then options after
# a colon. `784-256-10:sigmoid` is the network above (it is also the preset `tutorial-256`).
# `mlplab.build_model` makes it as an `nn.Sequential` with the names we chose, and returns
# *logits*: it has no softmax layer, because the loss takes logits (lesson 3) and
# probabilities are only needed where someone looks at them.
#
# Since the names match, our Sequential's weights load straight into it.

# %%
model = mlplab.build_model("784-256-10:sigmoid")
print(model)
assert mlplab.parse_spec("tutorial-256") == model.spec

model.load_state_dict(seq.state_dict())  # the softmax layer has no parameters: names match
with torch.no_grad():
    probs_mlplab = F.softmax(model(image_batch), dim=1)
assert torch.allclose(probs_mlplab, probs_small, atol=1e-6)
print("mlplab model + softmax == our nn.Sequential:", torch.allclose(probs_mlplab, probs_small))

# %% [markdown]
# ## Counting parameters
#
# Each layer has `fan_in * fan_out` weights and `fan_out` biases:
# $784 \cdot 256 + 256 + 256 \cdot 10 + 10 = 203{,}530$. We count it by hand, from the module,
# from the spec, and with `mlplab inspect`, the command that prints a network's
# `named_parameters` (run here as a subprocess, exactly as in a terminal).

# %%
by_hand = 784 * 256 + 256 + 256 * 10 + 10
from_raw = sum(t.numel() for t in (W1, b1, W2, b2))
from_module = sum(p.numel() for p in net.parameters())

inspect = subprocess.run(
    [sys.executable, "-m", "mlplab", "inspect", "784-256-10:sigmoid"],
    capture_output=True,
    text=True,
    check=True,
)
print(inspect.stdout)
total_line = next(line for line in inspect.stdout.splitlines() if line.startswith("total"))
from_inspect = int(re.sub(r"\D", "", total_line))

counts = {
    "by hand": by_hand,
    "raw tensors": from_raw,
    "nn.Module": from_module,
    "mlplab model": count_parameters(model),
    "spec.num_parameters": model.spec.num_parameters,
    "mlplab inspect": from_inspect,
}
for where, n in counts.items():
    print(f"{where:20} {n:>9,}")
assert set(counts.values()) == {203_530}

# %% [markdown]
# All six agree. Next, lesson 2 trains networks like this one with the tutorials' seven-step
# recipe.
