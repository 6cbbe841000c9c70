# %% [markdown]
# # 7. Overfitting, and Fashion-MNIST with a 512-512 network
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# Training lowers the loss on the training images. What we want is a network that is right
# on images it has never seen, and the two can part ways: a network with enough parameters
# can *memorise* its training set, answers and all, and get no better, or worse, on new
# images. That is *overfitting*. This lesson makes it happen on purpose, measures it, and
# tries two remedies, *dropout* and *weight decay*. Then it trains PyTorch's quickstart
# network, 784-512-512-10, on Fashion-MNIST, a harder dataset in MNIST's format, and finds
# which classes it confuses.

# %% tags=["plain"]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print("device:", device)

# %% [markdown]
# Both datasets' tensors, from mlplab's loader (Fashion-MNIST has exactly MNIST's format:
# 60,000 + 10,000 grayscale images of 28×28, ten classes):

# %% tags=["data"]
import mlplab

mnist = mlplab.load_dataset("mnist")
train_images, train_labels = mnist.train.x, mnist.train.y  # (60000, 28, 28) uint8, (60000,)
test_images, test_labels = mnist.test.x, mnist.test.y  # (10000, 28, 28) uint8, (10000,)
fashion = mlplab.load_dataset("fashion-mnist")
fashion_train = (fashion.train.x, fashion.train.y)
fashion_test = (fashion.test.x, fashion.test.y)
fashion_classes = list(fashion.classes)  # "T-shirt/top", "Trouser", ...

# %% [markdown]
# ## Training accuracy is not the goal
#
# The *training set* is what the network learns from; the *test set* is kept apart and used
# only to measure. The gap between the two accuracies is the *generalisation gap*. With 60,000
# images it stays small for networks this size. To make it large, we give a network of 784-256-
# 256-10 ReLU units (268,800 parameters) only 1,000 training images, 100 of each digit, and
# train for 100 epochs, measuring both sets every 5 epochs.

# %% tags=["plain"]
small = torch.cat([torch.nonzero(train_labels == digit).squeeze(1)[:100] for digit in range(10)])
x_small = train_images[small].float().div(255).view(-1, 784).to(device)  # (1000, 784)
y_small = train_labels[small].to(device)
x_test = test_images.float().div(255).view(-1, 784).to(device)
y_test = test_labels.to(device)


def network(dropout=0.0):
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, 10),
    ).to(device)


def measure(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        accuracy = 100 * (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def fit(model, optimizer, epochs=100, every=5):
    """Train on the 1,000 images in batches of 100; (epoch, train loss, train accuracy,
    test loss, test accuracy) every `every` epochs."""
    generator = torch.Generator().manual_seed(0)
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(1000, generator=generator).split(100):
            idx = idx.to(device)
            optimizer.zero_grad()
            F.cross_entropy(model(x_small[idx]), y_small[idx]).backward()
            optimizer.step()
        if epoch % every == 0:
            history.append((epoch, *measure(model, x_small, y_small), *measure(model, x_test, y_test)))
    return history


torch.manual_seed(0)
plain_net = network()
plain = fit(plain_net, torch.optim.SGD(plain_net.parameters(), lr=0.1))
for epoch, train_loss, train_acc, test_loss, test_acc in plain[::4] + plain[-1:]:
    print(f"epoch {epoch:3}: train loss {train_loss:.3f}, accuracy {train_acc:5.1f}% | test loss {test_loss:.3f}, accuracy {test_acc:.2f}%")

# %% tags=["plain"] alt="Two panels over 100 epochs of training on 1,000 MNIST images. Left: the loss on the training images falls steadily toward 0, while the loss on the test images falls until about epoch 40, then rises again. Right: the training accuracy reaches 100 percent within about 30 epochs; the test accuracy levels off near 87 percent, leaving a gap of about 13 points."
epochs = [h[0] for h in plain]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
ax1.plot(epochs, [h[1] for h in plain], "o-", label="training images")
ax1.plot(epochs, [h[3] for h in plain], "o-", label="test images")
ax1.set_ylabel("cross-entropy loss")
ax2.plot(epochs, [h[2] for h in plain], "o-", label="training images")
ax2.plot(epochs, [h[4] for h in plain], "o-", label="test images")
ax2.set_ylabel("accuracy (%)")
for ax in (ax1, ax2):
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The training accuracy reaches 100%: every one of the 1,000 images is right. The test accuracy
# stalls near 87%. And the test loss, after falling for a while, *rises*: the network keeps
# growing more certain of its answers, right and wrong, and on new images the wrong ones now
# cost more. That rise is the clearest sign of overfitting.

# %% tags=["plain"]
final = plain[-1]
best_test_loss = min(h[3] for h in plain)
print(f"gap: {final[2] - final[4]:.1f} points; test loss {final[3]:.3f} at the end, {best_test_loss:.3f} at its lowest")
assert final[2] == 100.0 and final[2] - final[4] > 8
assert final[3] > 1.15 * best_test_loss

# %% [markdown]
# ## Two remedies
#
# - **Dropout** (`nn.Dropout(p)`): while training, each unit's output is set to 0 with
#   probability $p$, afresh for every example, and the survivors are multiplied by
#   $1/(1 - p)$ so that the expected sum is unchanged. No unit can count on any other being
#   there, so the network cannot lean on a few fragile combinations. In evaluation mode
#   (`model.eval()`) dropout does nothing: this is the layer for which `model.train()` and
#   `model.eval()` matter.
# - **Weight decay**: each step also shrinks every weight a little toward 0, by adding
#   $\lambda w$ to its gradient ($\lambda$, lambda, is the decay rate). It is the same as
#   adding $\frac{\lambda}{2}\lVert w \rVert^2$ to the loss, a penalty on large weights. In
#   PyTorch it is an optimizer setting: `SGD(..., weight_decay=λ)`.

# %% tags=["plain"]
torch.manual_seed(0)
dropout_net = network(dropout=0.5)
with_dropout = fit(dropout_net, torch.optim.SGD(dropout_net.parameters(), lr=0.1))

torch.manual_seed(0)
decay_net = network()
with_decay = fit(decay_net, torch.optim.SGD(decay_net.parameters(), lr=0.1, weight_decay=5e-3))

runs = {"no remedy": plain, "dropout 0.5": with_dropout, "weight decay 5e-3": with_decay}
for name, history in runs.items():
    print(f"{name:18} after 100 epochs: test loss {history[-1][3]:.3f}, test accuracy {history[-1][4]:.2f}%")

# %% tags=["plain"] alt="Two panels comparing three runs on the 1,000 images over 100 epochs. Left: the test loss; without a remedy it bottoms out near epoch 40 and climbs to about 0.58; with weight decay it stays flatter, near 0.46; with dropout it stays lowest at the end, about 0.44. Right: the test accuracy; dropout ends highest, near 88.7 percent, while the other two end near 86.6 percent."
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name, history in runs.items():
    ax1.plot([h[0] for h in history], [h[3] for h in history], "o-", ms=3, label=name)
    ax2.plot([h[0] for h in history], [h[4] for h in history], "o-", ms=3, label=name)
ax1.set_ylabel("test loss")
ax2.set_ylabel("test accuracy (%)")
for ax in (ax1, ax2):
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Dropout keeps the test loss low and raises the test accuracy by about two points. Weight
# decay stops the test loss from climbing, since the network cannot grow its weights, and with
# them its certainty, without paying for it; on this run it does not raise the accuracy. Both
# still fit the training images perfectly: they make memorising harder, not impossible. The
# surest cure is more data.

# %% tags=["plain"]
assert with_dropout[-1][4] > plain[-1][4] + 1.0
assert with_decay[-1][3] < 0.9 * plain[-1][3]
dropout_net.train()
noisy = [dropout_net(x_test[:5]) for _ in range(2)]
dropout_net.eval()
steady = [dropout_net(x_test[:5]) for _ in range(2)]
assert not torch.equal(*noisy) and torch.equal(*steady)  # dropout acts only in training mode

# %% [markdown]
# ## Fashion-MNIST
#
# Fashion-MNIST has MNIST's format and ten kinds of clothing instead of digits. It is much
# harder: shirts, T-shirts, pullovers and coats look alike at 28×28.

# %% tags=["plain"] alt="A grid of Fashion-MNIST training images, two per class in ten columns, each column titled with its class: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot. Each image is a small grayscale garment or shoe, light on black."
fig, axes = plt.subplots(2, 10, figsize=(12, 2.9))
for k, name in enumerate(fashion_classes):
    examples = torch.nonzero(fashion_train[1] == k).squeeze(1)[:2]
    for row, i in enumerate(examples.tolist()):
        axes[row, k].imshow(fashion_train[0][i], cmap="gray")
        axes[row, k].axis("off")
    axes[0, k].set_title(name, fontsize=9)
plt.show()
assert fashion_classes[6] == "Shirt" and len(fashion_classes) == 10

# %% [markdown]
# ## The quickstart network
#
# PyTorch's quickstart builds its network as a class holding an `nn.Flatten` and an
# `nn.Sequential` stack. `nn.Flatten()` keeps the first dimension (the batch) and joins all the
# others: `(B, 1, 28, 28)` becomes `(B, 784)`, the same as `x.view(len(x), -1)`. The stack is two
# hidden layers of 512 ReLU units and 10 logits. (One printed version of that guide also ends
# the stack with a ReLU after the last layer, which clamps every negative logit to 0; exercise 3
# shows why that hurts.)

# %% tags=["plain"]
class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


torch.manual_seed(0)
quickstart = NeuralNetwork().to(device)
print(quickstart)

images = fashion_train[0][:64].unsqueeze(1).float() / 255  # (64, 1, 28, 28), as ToTensor gives
assert torch.equal(nn.Flatten()(images), images.view(64, -1))

# %% [markdown]
# `named_parameters()` lists every tensor the optimizer will train. Weights are stored
# `(out, in)`: `linear_relu_stack.0.weight` maps 784 inputs to 512 units. In the names, the
# numbers are positions in the `Sequential`: 0, 2 and 4 are the linear layers, 1 and 3 the
# ReLUs, which have no parameters.

# %% tags=["plain"]
total = 0
for name, p in quickstart.named_parameters():
    print(f"{name:26} {str(tuple(p.shape)):11} {p.numel():>9,}")
    total += p.numel()
print(f"{'total':38} {total:>9,}")
assert total == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10 == 669_706

# %% [markdown]
# Two thirds of a million parameters, almost seven times model E's 99,710, and 60% of them in
# the first layer. The quickstart trains with a `train` function that runs one epoch and a
# `test` function that measures, with batches of 64. Its optimizer, SGD at 0.001, would need
# many epochs; we use *Adam* (lesson 5: it gives every weight a step of about the learning
# rate) at 0.001, for 2 epochs.

# %% tags=["plain"]
class ImageDataset(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i].float().div(255).unsqueeze(0), self.labels[i]


fashion_loader = DataLoader(ImageDataset(*fashion_train), batch_size=64, shuffle=True)
fashion_test_loader = DataLoader(ImageDataset(*fashion_test), batch_size=1000)


def train_epoch(loader, model, loss_fn, optimizer):
    model.train()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test(loader, model):
    """All the test predictions, and the accuracy."""
    model.eval()
    predicted = []
    with torch.no_grad():
        for images, _ in loader:
            predicted.append(model(images.to(device)).argmax(dim=1).cpu())
    predicted = torch.cat(predicted)
    return predicted, 100 * (predicted == loader.dataset.labels).float().mean().item()


optimizer = torch.optim.Adam(quickstart.parameters(), lr=1e-3)
for epoch in range(1, 3):
    train_epoch(fashion_loader, quickstart, nn.CrossEntropyLoss(), optimizer)
    predicted, fashion_accuracy = test(fashion_test_loader, quickstart)
    print(f"epoch {epoch}: test accuracy {fashion_accuracy:.2f}%")
assert fashion_accuracy > 80

# %% [markdown]
# ## Which classes, and which mistakes
#
# One accuracy hides how uneven the classes are. The *confusion matrix* counts, for each true
# class (a row), how often the network answered each class (a column): the diagonal holds the
# right answers. Every class has 1,000 test images, so each row adds up to 1,000.

# %% tags=["plain"]
confusion = torch.zeros(10, 10, dtype=torch.long)
for true, guess in zip(fashion_test[1].tolist(), predicted.tolist()):
    confusion[true, guess] += 1
per_class = confusion.diag().float() / confusion.sum(dim=1) * 100
order = per_class.argsort().tolist()
print(f"{'class':12} {'accuracy':>9}   most often mistaken for")
for k in order:
    row = confusion[k].clone()
    row[k] = 0
    top = row.argsort(descending=True)[:3].tolist()
    print(f"{fashion_classes[k]:12} {per_class[k]:8.1f}%   " + ", ".join(f"{fashion_classes[j]} ({int(row[j])})" for j in top))

# %% tags=["plain"] alt="A 10 by 10 confusion matrix of the quickstart network on the Fashion-MNIST test set, rows the true class and columns the answer, each cell printed with its count and darker for larger counts. The diagonal is dark for most classes and lighter for Shirt, Coat and Pullover. Off the diagonal, the counts gather in two blocks: T-shirt/top, Pullover, Coat and Shirt taken for one another, and Sandal, Sneaker and Ankle boot taken for one another."
fig, ax = plt.subplots(figsize=(7, 6))
ax.imshow(confusion, cmap="Blues")
ax.set_xticks(range(10), fashion_classes, rotation=60, ha="right")
ax.set_yticks(range(10), fashion_classes)
for i in range(10):
    for j in range(10):
        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7, color="white" if confusion[i, j] > 500 else "black")
ax.set_xlabel("the network's answer")
ax.set_ylabel("true class")
plt.show()

# %% [markdown]
# Most mistakes stay inside two families. The upper-body garments, T-shirt/top, pullover, coat
# and shirt, are taken for one another, and the shirt, which resembles all three others, is
# among the hardest classes. The footwear is confused within itself: sneakers are taken for
# ankle boots and sandals, rarely for anything else. Trousers and bags, whose shapes nothing
# else shares, are among the easiest. (Which single class comes out hardest, shirt or coat,
# changes from run to run at this budget; the families do not.)

# %% tags=["plain"]
index = {c: k for k, c in enumerate(fashion_classes)}
upper = [index[c] for c in ("T-shirt/top", "Pullover", "Coat", "Shirt")]
feet = [index[c] for c in ("Sandal", "Sneaker", "Ankle boot")]
mistakes = confusion.clone().fill_diagonal_(0)
inside = mistakes[upper][:, upper].sum() + mistakes[feet][:, feet].sum()
print(f"{inside / mistakes.sum():.0%} of the {int(mistakes.sum())} mistakes stay inside the two families")
assert inside > 0.6 * mistakes.sum()
assert index["Shirt"] in order[:3]  # among the three hardest classes
sneaker_row = mistakes[index["Sneaker"]]
assert set(sneaker_row.argsort(descending=True)[:2].tolist()) == {index["Ankle boot"], index["Sandal"]}
assert index["Trouser"] in order[5:] and index["Bag"] in order[5:]  # among the five easiest
assert (confusion.sum(dim=1) == 1000).all()

# %% [markdown]
# ## The same in mlplab
#
# mlplab's `784-512-512-10:relu` is the quickstart network with mlplab's layer names (`fc1`,
# `act1`, ...), so the quickstart's weights copy over, layer for layer, and it gives the same
# logits. The dropout and weight decay above are a spec option and a config field:
# `784-256-256-10:relu,dropout=0.5` and `weight_decay=5e-3`.

# %%
mine = mlplab.build_model("784-512-512-10:relu").to(device)
with torch.no_grad():
    for layer, theirs in zip(mine.linears(), [m for m in quickstart.linear_relu_stack if isinstance(m, nn.Linear)]):
        layer.weight.copy_(theirs.weight)
        layer.bias.copy_(theirs.bias)
    batch = images.to(device)
    assert torch.allclose(mine(batch), quickstart(batch), atol=1e-5)
print("mlplab's 784-512-512-10:relu with the quickstart's weights: the same logits")

# %% [markdown]
# `mlplab.train` with its defaults trains this network with the *Adam* optimizer (lesson 5:
# steps of about the learning rate for every weight) and a *one-cycle* schedule: the learning
# rate climbs from a small value to its peak, 0.004, in the first part of the run, then falls
# to almost nothing by the end. 300 iterations of 512 images (2.6 epochs), with the test set
# measured every 50:

# %%
config = mlplab.TrainConfig(dataset="fashion-mnist", model="784-512-512-10:relu", iterations=300, eval_every=50, seed=0)
result = mlplab.train(config, fashion)
evals = [r for r in result.history if r["kind"] == "eval"]
for r in evals:
    print(f"iteration {r['iteration']:3}: learning rate {r['lr']:.5f}, test accuracy {r['test_accuracy']:.2f}%")
print(f"{result.seconds:.1f} s on the {result.engine} engine")
worst = min(range(10), key=lambda k: result.test.per_class_accuracy[k])
print("the hardest class for mlplab's run:", fashion.classes[worst])
assert result.test.accuracy > 85 and fashion.classes[worst] in ("Shirt", "Coat", "Pullover")

# %% [markdown]
# mlplab's `fashion` recipe, 784-1024-1024-10 with batch norm and dropout for 50 epochs,
# reaches 91.06% on average over 3 seeds (`mlplab train --recipe fashion`; measured
# 2026-12-01 on a 2-core Intel Xeon VM).
#
# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment overfitting`, or with a lab running,
# http://127.0.0.1:8008/?experiment=overfitting) trains the 1,000-image network plain, with dropout and with weight decay side by side, training and test curves on one screen (and `--experiment mnist-fashion` trains one network on both datasets). [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Check what `nn.Dropout(0.5)` does in training mode to a tensor of ones: about half the
# entries become 0, the rest 2, and the mean stays near 1.

# %% tags=["solution"]
drop = nn.Dropout(0.5)
drop.train()
out = drop(torch.ones(100_000))
zeros = (out == 0).float().mean().item()
print(f"zeroed: {zeros:.3f}; survivors: {out[out > 0].unique().tolist()}; mean {out.mean():.3f}")
assert abs(zeros - 0.5) < 0.01 and out[out > 0].unique().tolist() == [2.0] and abs(out.mean() - 1) < 0.02

# %% [markdown]
# **2.** Choosing the epoch by the test loss would be cheating: the test set would then have
# helped train. Hold out 200 of the 1,000 images as a *validation set*, train on the other 800
# for 60 epochs, and keep the weights from the epoch with the lowest validation loss (this is
# *early stopping*). Compare that model's test loss with the last epoch's.

# %% tags=["solution"]
import copy

generator = torch.Generator().manual_seed(1)
shuffled = torch.randperm(1000, generator=generator).to(device)
fit_idx, val_idx = shuffled[:800], shuffled[800:]
torch.manual_seed(0)
model = network()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
best_val, best_state = float("inf"), None
for epoch in range(60):
    for idx in fit_idx[torch.randperm(800, generator=generator).to(device)].split(100):
        optimizer.zero_grad()
        F.cross_entropy(model(x_small[idx]), y_small[idx]).backward()
        optimizer.step()
    val_loss, _ = measure(model, x_small[val_idx], y_small[val_idx])
    if val_loss < best_val:
        best_val, best_state = val_loss, copy.deepcopy(model.state_dict())
last_test = measure(model, x_test, y_test)[0]
model.load_state_dict(best_state)
best_test = measure(model, x_test, y_test)[0]
print(f"test loss: last epoch {last_test:.3f}, best epoch by validation {best_test:.3f}")
assert best_test < last_test

# %% [markdown]
# **3.** The guide's version that ends its stack with a ReLU: build it, and on a batch of 64
# Fashion-MNIST images count the logits that are exactly 0 at the start, and the gradient
# that reaches them. Why can such a network never push a wrong class's logit below 0?

# %% tags=["solution"]
torch.manual_seed(0)
clamped = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10), nn.ReLU()).to(device)
z_last = clamped[:-1](images.to(device))  # the sums before the last ReLU
z_last.retain_grad()
F.cross_entropy(clamped[-1](z_last), fashion_train[1][:64].to(device)).backward()
clamped_share = (z_last <= 0).float().mean().item()
print(f"{clamped_share:.0%} of the logits are clamped to 0; the gradient reaching them: {z_last.grad[z_last <= 0].abs().max():.1f}")
# A ReLU's slope is 0 below 0: those logits get no gradient, and none can go below 0.
assert clamped_share > 0.2 and z_last.grad[z_last <= 0].abs().max() == 0

# %% [markdown]
# Next, [lesson 8](08_mistakes.ipynb) opens up a trained network's mistakes: the probabilities
# behind an answer, the confusion matrix on MNIST, the most confident errors, and what the
# first layer has learned to look for.
