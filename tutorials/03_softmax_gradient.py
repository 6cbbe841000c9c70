# %% [markdown]
# # Softmax, log-softmax, NLL and the gradient by hand
#
# A classifier's last layer gives logits $z \in \mathbb{R}^K$, one per class. This lesson
# follows them to the loss and back: softmax and its numerical trap, log-softmax and the
# negative log-likelihood, why `F.cross_entropy` is both at once, and the gradient that
# starts backpropagation, $\partial L / \partial z = \mathrm{softmax}(z) - \mathrm{onehot}(y)$.
# Then we push that gradient back through a hidden layer by hand, and check every number
# against autograd in float64, where the only difference left is rounding.

# %%
import math

import torch
import torch.nn.functional as F

import mlplab
from mlplab.lab.backprop import gradient_check
from mlplab.nn.scratch import ScratchMLP

torch.manual_seed(0)
data = mlplab.load_dataset("mnist")
norm = mlplab.Normalization(0.5, 0.5)
x_batch = norm.apply(data.train.x[:64]).double()  # (64, 784) float64
y_batch = data.train.y[:64]

# %% [markdown]
# ## Softmax, and the overflow
#
# $$\mathrm{softmax}(z)_k = \frac{e^{z_k}}{\sum_j e^{z_j}}$$
#
# Written as it reads, this breaks as soon as a logit is large: `exp` of anything above
# about 88.7 is infinite in float32 (about 709.8 in float64), and infinity divided by
# infinity is `nan`.

# %%
print("float32: exp(88) =", torch.exp(torch.tensor(88.0)).item())
print("float32: exp(89) =", torch.exp(torch.tensor(89.0)).item())

z = torch.tensor([[1000.0, 1001.0, 1002.0]])
naive = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
print("naive softmax of [1000, 1001, 1002]:", naive)
assert torch.isnan(naive).all()

# %% [markdown]
# The cure is free. Multiplying the numerator and the denominator by $e^{-c}$ changes
# nothing, so for any constant $c$
#
# $$\mathrm{softmax}(z)_k = \frac{e^{z_k - c}}{\sum_j e^{z_j - c}},$$
#
# and with $c = \max_j z_j$ every exponent is at most 0: no `exp` can overflow, and the
# largest term is exactly 1, so the sum cannot underflow to 0 either. `torch.softmax` does
# this, and so does mlplab's scratch network (`mlplab.nn.scratch.softmax`).

# %%
shifted = z - z.max(dim=1, keepdim=True).values  # [-2, -1, 0]
stable = torch.exp(shifted) / torch.exp(shifted).sum(dim=1, keepdim=True)
print("max-subtracted softmax:", stable)
print("torch.softmax:         ", torch.softmax(z, dim=1))
assert torch.isfinite(stable).all()
assert torch.allclose(stable, torch.softmax(z, dim=1))
assert torch.allclose(stable, torch.softmax(torch.tensor([[0.0, 1.0, 2.0]]), dim=1))

# %% [markdown]
# ## Log-softmax and the negative log-likelihood
#
# The loss for an example with label $y$ is the negative log of the probability the model
# gave the right class:
#
# $$L = -\log \mathrm{softmax}(z)_y = -z_y + \log \sum_j e^{z_j}.$$
#
# Taking the log *after* the softmax has its own trap: a probability smaller than the
# smallest float (about $10^{-45}$ in float32) rounds to 0, and its log is $-\infty$. The
# right-hand form never computes that probability:
# $\log \mathrm{softmax}(z)_k = z_k - \left(m + \log \sum_j e^{z_j - m}\right)$ with
# $m = \max_j z_j$. That is `F.log_softmax`.

# %%
z = torch.tensor([[0.0, -200.0]])
print("log(softmax(z)):", torch.log(torch.softmax(z, dim=1)))
print("log_softmax(z): ", F.log_softmax(z, dim=1))
assert torch.isinf(torch.log(torch.softmax(z, dim=1))[0, 1])
assert F.log_softmax(z, dim=1)[0, 1].item() == -200.0

# %% [markdown]
# The nn.Sequential tutorial ends its network with `nn.LogSoftmax` and trains it with
# `nn.NLLLoss`, which picks out $-\log p_y$ for each example and averages. `F.cross_entropy`
# on raw logits is the same function in one call (mlplab's networks return logits, and its
# `loss="nll"` setting computes the two-step version). On logits of a real batch:

# %%
model = mlplab.build_model("784-64-10:sigmoid").double()
logits = model(x_batch)  # (64, 784) -> (64, 10)

two_steps = F.nll_loss(F.log_softmax(logits, dim=1), y_batch)
one_call = F.cross_entropy(logits, y_batch)
by_hand = -(logits[torch.arange(64), y_batch] - torch.logsumexp(logits, dim=1)).mean()
print(f"nll_loss(log_softmax(z)) = {two_steps.item():.15f}")
print(f"cross_entropy(z)         = {one_call.item():.15f}")
print(f"-z_y + logsumexp(z)      = {by_hand.item():.15f}")
assert torch.allclose(two_steps, one_call, rtol=0, atol=1e-12)
assert torch.allclose(by_hand, one_call, rtol=0, atol=1e-12)

# %% [markdown]
# An untrained network spreads its probability evenly, so its loss is close to
# $-\log(1/10) = \log 10 \approx 2.303$:

# %%
print(f"untrained loss {one_call.item():.3f}, log(10) = {math.log(10):.3f}")
assert abs(one_call.item() - math.log(10)) < 0.2

# %% [markdown]
# ## The gradient with respect to the logits
#
# Differentiate $L = -z_y + \log \sum_j e^{z_j}$ with respect to one logit $z_k$. The first
# term gives $-1$ when $k = y$ and 0 otherwise; the second gives
# $e^{z_k} / \sum_j e^{z_j} = p_k$. So
#
# $$\frac{\partial L}{\partial z_k} = p_k - [k = y], \qquad
# \frac{\partial L}{\partial z} = \mathrm{softmax}(z) - \mathrm{onehot}(y).$$
#
# For a batch of $B$ examples the loss is the mean, so each row is divided by $B$. Two
# consequences are worth seeing in numbers: before that division every entry lies between
# $-1$ and $1$ (however wrong the network, this gradient cannot explode), and every row sums
# to 0 (the right class is pushed up by exactly as much as the others together are pushed
# down).

# %%
z = logits.detach().clone().requires_grad_(True)  # (64, 10) float64
loss = F.cross_entropy(z, y_batch)
(autograd_dz,) = torch.autograd.grad(loss, z)

onehot = F.one_hot(y_batch, num_classes=10).double()
hand_dz = (torch.softmax(z.detach(), dim=1) - onehot) / len(y_batch)

diff = (hand_dz - autograd_dz).abs().max().item()
print(f"largest |hand - autograd| for dL/dz: {diff:.2e}")
print("row sums (first 4):", hand_dz.sum(dim=1)[:4].tolist())
assert diff <= 1e-10
assert hand_dz.sum(dim=1).abs().max() < 1e-15
assert hand_dz.abs().max() <= 1.0 / len(y_batch)

# %% [markdown]
# A third opinion, from no calculus at all: nudge one logit by $\pm h$ and watch the loss.
# The central difference $(L(z + h) - L(z - h)) / 2h$ agrees with the formula to about
# $h^2$.

# %%
h = 1e-5
for row, k in [(0, int(y_batch[0])), (0, 3), (7, 9)]:
    bumped = logits.detach().clone()
    bumped[row, k] += h
    up = F.cross_entropy(bumped, y_batch)
    bumped[row, k] -= 2 * h
    down = F.cross_entropy(bumped, y_batch)
    numeric = ((up - down) / (2 * h)).item()
    print(f"z[{row},{k}]: formula {hand_dz[row, k].item():+.10f}, numeric {numeric:+.10f}")
    assert abs(numeric - hand_dz[row, k].item()) < 1e-8

# %% [markdown]
# ## Back through a hidden layer
#
# Now the whole network, $784 \to 64 \to 10$ with a sigmoid. Forward, for a batch $X$ of
# shape $(B, 784)$, with weights stored as `nn.Linear` stores them,
# $(\text{out}, \text{in})$:
#
# $$Z_1 = X W_1^\top + b_1,\quad A_1 = \sigma(Z_1),\quad Z_2 = A_1 W_2^\top + b_2.$$
#
# Backward, by the chain rule, starting from the gradient we just derived:
#
# $$\delta_2 = \frac{\mathrm{softmax}(Z_2) - Y}{B}, \qquad
# \frac{\partial L}{\partial W_2} = \delta_2^\top A_1, \qquad
# \frac{\partial L}{\partial b_2} = \textstyle\sum_{\text{rows}} \delta_2,$$
#
# $$\delta_1 = (\delta_2 W_2) \odot \sigma'(Z_1) = (\delta_2 W_2) \odot A_1 (1 - A_1),
# \qquad \frac{\partial L}{\partial W_1} = \delta_1^\top X, \qquad
# \frac{\partial L}{\partial b_1} = \textstyle\sum_{\text{rows}} \delta_1.$$
#
# Each weight gradient has its weight's shape: $\delta_2^\top A_1$ is
# $(10, B)(B, 64) = (10, 64)$. The same two lines repeat for any depth, with each
# activation's own derivative.

# %%
W1, b1 = model.fc1.weight.detach(), model.fc1.bias.detach()  # (64, 784), (64,)
W2, b2 = model.fc2.weight.detach(), model.fc2.bias.detach()  # (10, 64), (10,)
X, B = x_batch, len(y_batch)

Z1 = torch.mm(X, W1.t()) + b1  # (B, 64)
A1 = torch.sigmoid(Z1)
Z2 = torch.mm(A1, W2.t()) + b2  # (B, 10)

delta2 = (torch.softmax(Z2, dim=1) - onehot) / B  # (B, 10)
hand = {
    "fc2.weight": torch.mm(delta2.t(), A1),  # (10, 64)
    "fc2.bias": delta2.sum(dim=0),
}
delta1 = torch.mm(delta2, W2) * A1 * (1 - A1)  # (B, 64)
hand["fc1.weight"] = torch.mm(delta1.t(), X)  # (64, 784)
hand["fc1.bias"] = delta1.sum(dim=0)

model.zero_grad()
F.cross_entropy(model(X), y_batch).backward()
print(f"{'parameter':12} {'shape':12} {'largest |hand - autograd|':>26}")
for name, p in model.named_parameters():
    d = (hand[name] - p.grad).abs().max().item()
    print(f"{name:12} {str(tuple(p.shape)):12} {d:26.2e}")
    assert hand[name].shape == p.shape
    assert d <= 1e-10

# %% [markdown]
# ## mlplab's scratch network
#
# `mlplab.nn.scratch.ScratchMLP` is exactly this, for any depth and for sigmoid, tanh or
# ReLU: plain tensors, `torch.mm`, a hand-written backward pass and SGD, with no autograd at
# all. It is what `mlplab train --engine scratch` trains. Copied from the model above, its
# gradients are ours; on a deeper tanh network they are autograd's.

# %%
scratch = ScratchMLP.from_module(model)
scratch_logits, cache = scratch.forward(X)
grads = scratch.backward(cache, y_batch)  # [(dW1, db1), (dW2, db2)]
assert torch.allclose(scratch_logits, Z2, rtol=0, atol=1e-12)
for i, (dw, db) in enumerate(grads, start=1):
    assert (dw - hand[f"fc{i}.weight"]).abs().max() <= 1e-12
    assert (db - hand[f"fc{i}.bias"]).abs().max() <= 1e-12
print("ScratchMLP.backward == the hand-written pass above")

deep = mlplab.build_model("784-128-64-10:tanh").double()
scratch = ScratchMLP.from_module(deep)
_, cache = scratch.forward(X)
F.cross_entropy(deep(X), y_batch).backward()
for layer, (dw, db) in zip(deep.linears(), scratch.backward(cache, y_batch), strict=True):
    d = max((dw - layer.weight.grad).abs().max().item(), (db - layer.bias.grad).abs().max().item())
    print(f"{str(tuple(layer.weight.shape)):10} scratch vs autograd: {d:.2e}")
    assert d <= 1e-10

# %% [markdown]
# ## Layer by layer, for any of mlplab's networks
#
# The lab's *check the math* panel is `mlplab.lab.backprop.gradient_check`: for one image
# and a label of your choice, it writes the backward pass out for any mlplab network (any
# activation, batch norm included), copies it to float64 and compares each layer with
# autograd. Here, a two-hidden-layer ReLU network and the first training image, checked
# against its true label and against a wrong one.

# %%
relu_net = mlplab.build_model("784-128-64-10:relu")
image = norm.apply(data.train.x[:1])  # (1, 784) float32; the check works in float64
for label in (int(data.train.y[0]), 3):
    check = gradient_check(relu_net, image, label)
    print(f"label {label}: loss {check['loss']:.4f}, largest difference {check['max_diff']:.2e}")
    for layer in check["layers"]:
        print(
            f"  {layer['name']} {str(layer['shape']):11} |grad| hand {layer['hand_norm']:.6f}"
            f" autograd {layer['autograd_norm']:.6f}"
        )
    assert check["dtype"] == "float64" and check["max_diff"] <= 1e-10
    assert math.isclose(sum(check["output"]["delta"]), 0.0, abs_tol=1e-15)

# %% [markdown]
# ## The hand-written backward pass learns
#
# Finally, training with nothing but those formulas: model C (784-100-10, ReLU) on the scratch
# engine, with the recipe of lesson 2 (SGD at 0.1, batch 100, `ToTensor`), for 500
# iterations here (the full recipe runs 3,000). The `autograd` engine, from the same seed,
# takes the same steps up to float32 rounding.

# %%
config = mlplab.TrainConfig(
    preset="c",
    engine="scratch",
    optimizer="sgd",
    lr=0.1,
    batch_size=100,
    iterations=500,
    schedule="constant",
    normalization="none",
    seed=0,
)
by_scratch = mlplab.train(config, data)
by_autograd = mlplab.train(config.replace(engine="autograd"), data)
a, b = by_scratch.test.accuracy, by_autograd.test.accuracy
print(f"500 iterations: scratch engine {a:.2f}%, autograd engine {b:.2f}%")
assert a > 90.0 and abs(a - b) <= 0.1
