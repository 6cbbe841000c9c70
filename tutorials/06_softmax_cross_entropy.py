# %% [markdown]
# # 6. Softmax, cross-entropy and the gradient by hand
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# A classifier's last layer gives *logits* $z = (z_1, \dots, z_K)$, one real number per class
# ($K = 10$ for digits). This lesson follows them to the loss and back. The classic tutorials
# end their networks in three different ways, and we start by sorting them out. Then: softmax
# and its numerical trap, log-softmax and the negative log-likelihood, why cross-entropy
# beats squared error for classifiers, and the gradient that starts the backward pass,
# $\partial L / \partial z = \mathrm{softmax}(z) - \mathrm{onehot}(y)$, pushed back through a
# hidden layer by hand and checked against autograd.

# %% tags=["plain"]
import math

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

# %% tags=["plain"]
torch.manual_seed(0)
x_batch = ((train_images[:64].double() / 255 - 0.5) / 0.5).view(64, -1).to(device)  # (64, 784) float64
y_batch = train_labels[:64].to(device)

# %% [markdown]
# (This lesson computes in float64, double precision, wherever it compares two ways of getting
# the same number, so that the only differences left are rounding in the 15th digit.)
#
# ## Three endings
#
# - The `nn.Sequential` tutorial ends its network with `nn.Softmax(dim=1)`: the outputs are
#   probabilities, and it never trains the network.
# - The log-softmax tutorial ends `forward` with `F.log_softmax` and trains with `F.nll_loss`.
# - The seven-step tutorial (lessons 3 and 4) returns the logits and trains with
#   `nn.CrossEntropyLoss`.
#
# The last two are the same function, as this lesson shows. The trap is a mix of the first and
# the third: a network that ends with a softmax, trained with `CrossEntropyLoss`, which applies
# a softmax of its own. It runs, but it is a different loss, and a worse one (exercise 3).
#
# ## Softmax, and the overflow
#
# $$\mathrm{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j=1}^{K} e^{z_j}}$$
#
# The exponential makes every output positive, the division makes them add up to 1, and a logit
# a little larger than the others gets a much larger share. Written exactly as it reads, it
# breaks as soon as a logit is large: `exp` of anything above about 88.7 is infinite in float32
# (above 709.8 in float64), and infinity divided by infinity is `nan` ("not a number").

# %% tags=["plain"]
print("float32: exp(88) =", torch.exp(torch.tensor(88.0)).item())
print("float32: exp(89) =", torch.exp(torch.tensor(89.0)).item())

z = torch.tensor([[1000.0, 1001.0, 1002.0]])
naive = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
print("naive softmax of [1000, 1001, 1002]:", naive)
assert torch.isnan(naive).all()

# %% [markdown]
# The cure costs nothing. Multiplying the top and the bottom by $e^{-c}$ changes nothing, so
# for any constant $c$
#
# $$\mathrm{softmax}(z)_k = \frac{e^{z_k - c}}{\sum_{j} e^{z_j - c}},$$
#
# and with $c = \max_j z_j$ every exponent is at most 0: no `exp` can overflow, and the largest
# term is exactly 1, so the sum cannot round to 0 either. `torch.softmax` does this.

# %% tags=["plain"]
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
# A classifier is scored by the probability it gave the right class, $p_y$ for the label $y$.
# The *negative log-likelihood* (NLL) of one example is $-\log p_y$: 0 when the network was
# certain and right, large when it gave the right class little probability. Written with the
# logits,
#
# $$L = -\log \mathrm{softmax}(z)_y = -z_y + \log \sum_j e^{z_j}.$$
#
# Taking the log *after* the softmax has a trap of its own: a probability smaller than the
# smallest float32 (about $10^{-45}$) rounds to 0, and its log is $-\infty$. The right-hand form
# never computes that probability: $\log \mathrm{softmax}(z)_k = z_k - (m + \log \sum_j
# e^{z_j - m})$ with $m = \max_j z_j$. That is `F.log_softmax`.

# %% tags=["plain"]
z = torch.tensor([[0.0, -200.0]])
print("log(softmax(z)):", torch.log(torch.softmax(z, dim=1)))
print("log_softmax(z): ", F.log_softmax(z, dim=1))
assert torch.isinf(torch.log(torch.softmax(z, dim=1))[0, 1])
assert F.log_softmax(z, dim=1)[0, 1].item() == -200.0

# %% [markdown]
# `F.nll_loss` takes log-probabilities and the labels, picks out $-\log p_y$ for each example
# and averages over the batch. `F.cross_entropy` (the function behind `nn.CrossEntropyLoss`)
# takes the logits and does both steps at once. On a real batch, through a small network:

# %% tags=["plain"]
net = nn.Sequential(nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 10)).double().to(device)
logits = net(x_batch)  # (64, 784) -> (64, 10)

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
# $-\log(1/10) = \log 10 \approx 2.303$ (*cross-entropy* is the general name of this loss:
# the NLL of the label under the predicted distribution):

# %% tags=["plain"]
print(f"untrained loss {one_call.item():.3f}, log(10) = {math.log(10):.3f}")
assert abs(one_call.item() - math.log(10)) < 0.2

# %% [markdown]
# ## The gradient with respect to the logits
#
# Differentiate $L = -z_y + \log \sum_j e^{z_j}$ with respect to one logit $z_k$. The first term
# gives $-1$ when $k = y$ and 0 otherwise; the second gives $e^{z_k} / \sum_j e^{z_j} = p_k$.
# Writing $[k = y]$ for "1 if $k$ is the label, else 0",
#
# $$\frac{\partial L}{\partial z_k} = p_k - [k = y], \qquad
# \frac{\partial L}{\partial z} = \mathrm{softmax}(z) - \mathrm{onehot}(y),$$
#
# where $\mathrm{onehot}(y)$ is the vector of $K$ zeros with a 1 at position $y$. The picture
# shows it for one image: the network's probabilities, the one-hot label, and their
# difference, which pushes the right class's logit up and every other logit down, each in
# proportion to its probability.

# %% tags=["plain"] alt="Three bar charts over the ten digits for the first training image, whose label is 5. Left: the untrained network's softmax probabilities, all between about 0.05 and 0.2. Middle: the one-hot label, a single bar of height 1 at digit 5. Right: their difference, the gradient of the loss with respect to the logits: small positive bars for the nine wrong digits and one large negative bar, near minus 0.9, at digit 5; the bars add up to zero."
p0 = torch.softmax(logits[0].detach(), dim=0).cpu()
onehot0 = F.one_hot(y_batch[0], 10).double().cpu()
fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
for ax, values, title in zip(axes, [p0, onehot0, p0 - onehot0], ["softmax(z)", f"onehot(y), y = {int(y_batch[0])}", "∂L/∂z = softmax(z) − onehot(y)"]):
    ax.bar(range(10), values, color=["tab:red" if v < 0 else "tab:blue" for v in values])
    ax.set_xticks(range(10))
    ax.set_title(title)
    ax.axhline(0, color="0.5", lw=0.5)
plt.show()
assert abs((p0 - onehot0).sum().item()) < 1e-12

# %% [markdown]
# For a batch of $B$ examples the loss is the mean, so each row of the gradient is also divided
# by $B$. Two consequences, checked below: before that division every entry lies between $-1$
# and $1$, so however wrong the network is, this gradient cannot explode; and every row sums to
# 0, the right class pushed up by exactly as much as the others together are pushed down.

# %% tags=["plain"]
z = logits.detach().clone().requires_grad_(True)  # (64, 10) float64
loss = F.cross_entropy(z, y_batch)
(autograd_dz,) = torch.autograd.grad(loss, z)

onehot = F.one_hot(y_batch, num_classes=10).double()
hand_dz = (torch.softmax(z.detach(), dim=1) - onehot) / len(y_batch)

diff = (hand_dz - autograd_dz).abs().max().item()
print(f"largest |hand - autograd| for dL/dz: {diff:.2e}")
assert diff <= 1e-10
assert hand_dz.sum(dim=1).abs().max() < 1e-15
assert hand_dz.abs().max() <= 1.0 / len(y_batch)

# %% [markdown]
# A third opinion, from no calculus at all: nudge one logit by $\pm h$ and watch the loss. The
# central difference $(L(z + h) - L(z - h)) / 2h$ agrees with the formula to about $h^2$.

# %% tags=["plain"]
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
# ## Why not squared error?
#
# Regression uses the squared error. For a classifier it would be $L = \sum_k (p_k - [k =
# y])^2$, the distance between the probabilities and the one-hot label. It is zero when the
# network is right and certain, like cross-entropy. The difference is in the gradient when the
# network is *confidently wrong*: with $p_y$ tiny, the softmax is saturated, flat, and the
# squared error's gradient shrinks with $p_y$, while cross-entropy's stays near $-1$ (its
# $-\log$ undoes the softmax's exponential). So the squared error learns least from the
# examples it gets most wrong.
#
# Below, one example with ten logits in which the right class, 0, gets probability $p_y$, from
# 0.5 down to $10^{-6}$; both gradients with respect to $z_y$, by autograd.

# %% tags=["plain"]
def logit_gradients(p_right: float) -> tuple[float, float]:
    """|dL/dz_y| for cross-entropy and squared error, when class 0 (the label) gets p_right
    and the other nine share the rest."""
    z = torch.tensor([math.log(p_right)] + [math.log((1 - p_right) / 9)] * 9, dtype=torch.float64, requires_grad=True)
    label = torch.tensor([0])
    (ce,) = torch.autograd.grad(F.cross_entropy(z.unsqueeze(0), label), z)
    (se,) = torch.autograd.grad(((torch.softmax(z, 0) - F.one_hot(label[0], 10)) ** 2).sum(), z)
    return abs(ce[0].item()), abs(se[0].item())


p_values = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.5]
grads = {p: logit_gradients(p) for p in p_values}
for p in (1e-1, 1e-3, 1e-6):
    ce, se = grads[p]
    print(f"p_y = {p:.0e}: |dL/dz_y| cross-entropy {ce:.4f}, squared error {se:.2e}")
assert grads[1e-3][0] > 100 * grads[1e-3][1]
assert grads[1e-6][0] > 0.99

# %% tags=["plain"] alt="A log-log plot of the size of the gradient with respect to the right class's logit against the probability the network gave the right class, from one in a million to 0.5. The cross-entropy line stays flat, close to 1, all the way down. The squared-error line falls in proportion to the probability, to about one in a million at the left."
fig, ax = plt.subplots(figsize=(7, 4))
ax.loglog(p_values, [grads[p][0] for p in p_values], "o-", label="cross-entropy")
ax.loglog(p_values, [grads[p][1] for p in p_values], "o-", label="squared error")
ax.set_xlabel("probability given to the right class, $p_y$")
ax.set_ylabel("|∂L/∂z_y|")
ax.legend()
plt.show()

# %% [markdown]
# Trained both ways (model C, SGD at 0.1, batches of 100, 3,000 iterations, the same seed and
# batch order), the difference shows twice: in the test accuracy, and in how many training
# images the network still gets confidently wrong at the end, giving the right digit a
# probability under 1%.

# %% tags=["plain"]
x_train = train_images.float().div(255).view(-1, 784).to(device)
y_train = train_labels.to(device)
x_test = test_images.float().div(255).view(-1, 784).to(device)
y_test = test_labels.to(device)


def squared_error(logits, labels):
    return ((torch.softmax(logits, dim=1) - F.one_hot(labels, 10)) ** 2).sum(dim=1).mean()


def train_with(loss_fn, n_iters=3000):
    """Model C trained with loss_fn: its test accuracy, and the training images it gives the
    right class a probability under 0.01."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator, done = torch.Generator().manual_seed(0), 0
    while done < n_iters:
        for idx in torch.randperm(60_000, generator=generator).split(100)[: n_iters - done]:
            idx = idx.to(device)
            optimizer.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
            done += 1
    with torch.no_grad():
        accuracy = 100 * (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        p_right = torch.softmax(model(x_train), dim=1)[torch.arange(60_000), y_train]
    return accuracy, int((p_right < 0.01).sum())


by_loss = {"cross-entropy": train_with(F.cross_entropy), "squared error": train_with(squared_error)}
for name, (accuracy, wrong) in by_loss.items():
    print(f"{name:14} test accuracy {accuracy:.2f}%; training images with p_y < 0.01: {wrong}")
(ce_accuracy, ce_wrong), (se_accuracy, se_wrong) = by_loss.values()
assert ce_accuracy > se_accuracy + 1.0
assert se_wrong > 1.5 * ce_wrong  # squared error leaves its worst mistakes alone

# %% [markdown]
# The squared-error network ends with more than twice as many training images it is sure
# about and wrong about: those are exactly the examples whose gradient it had shrunk.
#
# %% [markdown]
# ## Back through a hidden layer
#
# Now the whole network, $784 \to 64 \to 10$ with a sigmoid. Some notation first:
#
# - $X$ is a batch of inputs, one image per row, shape $(B, 784)$;
# - $W_1$, $b_1$ and $W_2$, $b_2$ are the layers' weights and biases, stored as `nn.Linear`
#   stores them, $(\text{out}, \text{in})$, so a layer computes $X W^\top + b$;
# - $Z_1, A_1$ are the hidden layer's sums and outputs, $Z_2$ the logits;
# - $Y$ is the labels one-hot, shape $(B, 10)$;
# - $\delta_\ell$ ("delta") is the gradient of the loss with respect to layer $\ell$'s sums
#   $Z_\ell$, the quantity backpropagation passes down from layer to layer;
# - $\odot$ multiplies two matrices of the same shape entry by entry (PyTorch's `*`).
#
# Forward:
#
# $$Z_1 = X W_1^\top + b_1,\quad A_1 = \sigma(Z_1),\quad Z_2 = A_1 W_2^\top + b_2.$$
#
# Backward, by the chain rule, starting from the gradient above:
#
# $$\delta_2 = \frac{\mathrm{softmax}(Z_2) - Y}{B}, \qquad
# \frac{\partial L}{\partial W_2} = \delta_2^\top A_1, \qquad
# \frac{\partial L}{\partial b_2} = \textstyle\sum_{\text{rows}} \delta_2,$$
#
# $$\delta_1 = (\delta_2 W_2) \odot \sigma'(Z_1) = (\delta_2 W_2) \odot A_1 (1 - A_1),
# \qquad \frac{\partial L}{\partial W_1} = \delta_1^\top X, \qquad
# \frac{\partial L}{\partial b_1} = \textstyle\sum_{\text{rows}} \delta_1.$$
#
# Each weight gradient has its weight's shape: $\delta_2^\top A_1$ is $(10, B)(B, 64) = (10,
# 64)$. The same two lines repeat for any depth, with each activation's own slope in place of
# $\sigma'$ (lesson 5).

# %% tags=["plain"]
W1, b1 = net[0].weight.detach(), net[0].bias.detach()  # (64, 784), (64,)
W2, b2 = net[2].weight.detach(), net[2].bias.detach()  # (10, 64), (10,)
X, B = x_batch, len(y_batch)

Z1 = torch.mm(X, W1.t()) + b1  # (B, 64)
A1 = torch.sigmoid(Z1)
Z2 = torch.mm(A1, W2.t()) + b2  # (B, 10)

delta2 = (torch.softmax(Z2, dim=1) - onehot) / B  # (B, 10)
hand = {
    "2.weight": torch.mm(delta2.t(), A1),  # (10, 64)
    "2.bias": delta2.sum(dim=0),
}
delta1 = torch.mm(delta2, W2) * A1 * (1 - A1)  # (B, 64)
hand["0.weight"] = torch.mm(delta1.t(), X)  # (64, 784)
hand["0.bias"] = delta1.sum(dim=0)

net.zero_grad()
F.cross_entropy(net(X), y_batch).backward()
print(f"{'parameter':10} {'shape':12} {'largest |hand - autograd|':>26}")
for name, p in net.named_parameters():
    d = (hand[name] - p.grad).abs().max().item()
    print(f"{name:10} {str(tuple(p.shape)):12} {d:26.2e}")
    assert hand[name].shape == p.shape
    assert d <= 1e-10

# %% [markdown]
# ## In mlplab: a network with no autograd at all
#
# `mlplab.nn.scratch.ScratchMLP` is exactly this, for any depth and for sigmoid, tanh or ReLU:
# plain tensors, `torch.mm`, the hand-written backward pass and SGD, with no autograd. It is
# what `mlplab train --engine scratch` trains. Copied from a mlplab network with our weights,
# its gradients are ours; on a deeper tanh network they are autograd's.

# %%
from mlplab.lab.backprop import gradient_check
from mlplab.nn.scratch import ScratchMLP

model = mlplab.build_model("784-64-10:sigmoid").double()
model.load_state_dict({"fc1.weight": W1, "fc1.bias": b1, "fc2.weight": W2, "fc2.bias": b2})
scratch = ScratchMLP.from_module(model)
scratch_logits, cache = scratch.forward(X.cpu())
grads = scratch.backward(cache, y_batch.cpu())  # [(dW1, db1), (dW2, db2)]
assert torch.allclose(scratch_logits, Z2.cpu(), rtol=0, atol=1e-12)
for (dw, db), layer in zip(grads, ("0", "2")):
    assert (dw - hand[f"{layer}.weight"].cpu()).abs().max() <= 1e-12
    assert (db - hand[f"{layer}.bias"].cpu()).abs().max() <= 1e-12
print("ScratchMLP.backward == the hand-written pass above")

deep = mlplab.build_model("784-128-64-10:tanh").double()
scratch = ScratchMLP.from_module(deep)
_, cache = scratch.forward(X.cpu())
F.cross_entropy(deep(X.cpu()), y_batch.cpu()).backward()
for layer, (dw, db) in zip(deep.linears(), scratch.backward(cache, y_batch.cpu()), strict=True):
    d = max((dw - layer.weight.grad).abs().max().item(), (db - layer.bias.grad).abs().max().item())
    print(f"{str(tuple(layer.weight.shape)):10} scratch vs autograd: {d:.2e}")
    assert d <= 1e-10

# %% [markdown]
# The lab's *check the math* panel is `mlplab.lab.backprop.gradient_check`: for one image and a
# label of your choice it writes the backward pass out for any mlplab network (any activation,
# batch norm included), in float64, and compares each layer with autograd. Here a
# two-hidden-layer ReLU network on the first training image, against its true label and a
# wrong one.

# %%
relu_net = mlplab.build_model("784-128-64-10:relu")
image = mlplab.Normalization(0.5, 0.5).apply(train_images[:1])  # (1, 784) float32
for label in (int(train_labels[0]), 3):
    check = gradient_check(relu_net, image, label)
    print(f"label {label}: loss {check['loss']:.4f}, largest difference {check['max_diff']:.2e}")
    assert check["dtype"] == "float64" and check["max_diff"] <= 1e-10
    assert math.isclose(sum(check["output"]["delta"]), 0.0, abs_tol=1e-15)

# %% [markdown]
# And the hand-written backward pass learns. Model C on the scratch engine, with lesson 3's
# recipe for 500 iterations, and the same run on the autograd engine from the same seed: the
# same steps up to float32 rounding.

# %%
config = mlplab.TrainConfig(
    preset="c", engine="scratch", optimizer="sgd", lr=0.1, batch_size=100,
    iterations=500, schedule="constant", normalization="none", seed=0,
)
by_scratch = mlplab.train(config, mnist)
by_autograd = mlplab.train(config.replace(engine="autograd"), mnist)
a, b = by_scratch.test.accuracy, by_autograd.test.accuracy
print(f"500 iterations: scratch engine {a:.2f}%, autograd engine {b:.2f}%")
assert a > 90.0 and abs(a - b) <= 0.1

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment models-a-e`, or with a lab running,
# http://127.0.0.1:8008/?experiment=models-a-e) has a *Check the math* tab that writes this lesson's backward pass out for any input you draw, beside autograd's, for any of its runs. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Adding the same number to every logit of a row does not change its softmax. Check it
# on `logits`, and say which part of the derivation above relies on it.

# %% tags=["solution"]
assert torch.allclose(torch.softmax(logits + 7.5, dim=1), torch.softmax(logits, dim=1), atol=1e-12)
print("softmax(z + c) == softmax(z): the max-subtraction trick relies on it")

# %% [markdown]
# **2.** Write the cross-entropy of a batch from `F.log_softmax` and `gather` (pick each row's
# log-probability at its label), summed rather than averaged, and check it against
# `F.cross_entropy(..., reduction="sum")`.

# %% tags=["solution"]
log_p = F.log_softmax(logits, dim=1)  # (64, 10)
summed = -log_p.gather(1, y_batch.view(-1, 1)).sum()
assert torch.allclose(summed, F.cross_entropy(logits, y_batch, reduction="sum"), atol=1e-10)
print(f"summed cross-entropy {summed.item():.6f}")

# %% [markdown]
# **3.** The trap: a network ending in `nn.Softmax`, trained with `nn.CrossEntropyLoss`, which
# applies a softmax again. Compare the gradient with respect to the logits, for our batch, with
# and without the extra softmax. Why is the first so much smaller?

# %% tags=["solution"]
z = logits.detach().clone().requires_grad_(True)
(right,) = torch.autograd.grad(F.cross_entropy(z, y_batch), z)
(twice,) = torch.autograd.grad(F.cross_entropy(torch.softmax(z, dim=1), y_batch), z)
print(f"gradient norm: logits into the loss {right.norm():.4f}, softmax first {twice.norm():.4f}")
# The second softmax sees inputs between 0 and 1, whose exponentials differ by at most e,
# so even a perfect network cannot push its loss near 0, and the gradient is squashed.
assert twice.norm() < right.norm() / 3
assert F.cross_entropy(torch.log(F.one_hot(y_batch, 10).double() + 1e-12), y_batch) < 1e-9  # perfect: 0
assert F.cross_entropy(F.one_hot(y_batch, 10).double(), y_batch) > 1.4  # perfect, after a softmax: not 0

# %% [markdown]
# Next, [lesson 7](07_overfitting_fashion.ipynb) asks what happens when a network learns its
# training set too well, and trains a wider network on Fashion-MNIST.
