# %% [markdown]
# # 3. The seven steps: data, batches and the training loop
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# The classic feed-forward tutorial trains every network with the same seven steps:
#
# 1. load the dataset;
# 2. make the dataset iterable;
# 3. create the model class;
# 4. instantiate the model class;
# 5. instantiate the loss class;
# 6. instantiate the optimizer class;
# 7. train the model (and test it as you go).
#
# This lesson writes all seven in plain PyTorch for the tutorial's model C, one hidden layer of
# 100 ReLU units, explained line by line: a `Dataset`, a `DataLoader`, a model class, the loss,
# the optimizer, and the loop with `zero_grad`, `backward` and `step`. On the way: what batches,
# iterations and epochs are, why we train on mini-batches, and what the learning rate does to
# a real network. At the end, the same run as one mlplab call, checked to take the very same
# steps.

# %% tags=["plain"]
import time

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print("device:", device)

# %% [markdown]
# MNIST's tensors, as in lesson 1 (the one mlplab line before the end):

# %% tags=["data"]
import mlplab

mnist = mlplab.load_dataset("mnist")
train_images, train_labels = mnist.train.x, mnist.train.y  # (60000, 28, 28) uint8, (60000,)
test_images, test_labels = mnist.test.x, mnist.test.y  # (10000, 28, 28) uint8, (10000,)

# %% [markdown]
# ## Step 1: load the dataset
#
# PyTorch's `torch.utils.data.Dataset` is the shape every dataset takes: a class with two
# methods besides `__init__`.
#
# - `__len__` says how many examples there are.
# - `__getitem__(i)` returns example `i`: here the image as a float tensor `(1, 28, 28)` (one
#   channel, 28 rows, 28 columns, the shape torchvision's `ToTensor` gives) and its label.
#
# The transform happens in `__getitem__`, one image at a time, as torchvision does it:
# `ToTensor` divides by 255, and, if asked, `Normalize((0.5,), (0.5,))` maps [0, 1] to [−1, 1]
# (lesson 1). The tutorial's models A–E use `ToTensor` alone, so `normalize` is off by
# default.

# %% tags=["plain"]
class MNISTDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, normalize: bool = False):
        self.images, self.labels, self.normalize = images, labels, normalize

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div(255).unsqueeze(0)  # ToTensor: (1, 28, 28) in [0, 1]
        if self.normalize:
            x = (x - 0.5) / 0.5  # Normalize((0.5,), (0.5,)): [-1, 1]
        return x, self.labels[i]


train_set = MNISTDataset(train_images, train_labels)
test_set = MNISTDataset(test_images, test_labels)
image, label = train_set[0]
print(len(train_set), "training examples; the first:", tuple(image.shape), image.dtype, "label", int(label))
assert len(train_set) == 60_000 and len(test_set) == 10_000 and image.shape == (1, 28, 28)

# %% [markdown]
# Most of an MNIST image is background. After `ToTensor` the background is 0; after
# `Normalize` it is −1. The histograms count the values of all pixels of 100 images: about
# four in five are background, whichever the scale. (Lesson 5 shows why a background of −1
# can matter.)

# %% tags=["plain"] alt="Two histograms of the pixel values of 100 training images. Left, after ToTensor: values from 0 to 1, with a tall bar at 0 holding about 80 percent of the pixels and a smaller bar near 1. Right, after Normalize: the same shape moved to run from minus 1 to 1, the tall bar at minus 1."
normalized_set = MNISTDataset(train_images, train_labels, normalize=True)
raw = torch.stack([train_set[i][0] for i in range(100)]).flatten()
scaled = torch.stack([normalized_set[i][0] for i in range(100)]).flatten()
background = (raw == 0).float().mean().item()
print(f"background (0 after ToTensor, -1 after Normalize): {background:.0%} of the pixels")
assert 0.7 < background < 0.9 and torch.equal(scaled == -1, raw == 0)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.hist(raw, bins=50, color="tab:blue")
ax1.set_title("after ToTensor")
ax2.hist(scaled, bins=50, color="tab:orange")
ax2.set_title("after ToTensor and Normalize((0.5,), (0.5,))")
for ax in (ax1, ax2):
    ax.set_yscale("log")
    ax.set_xlabel("pixel value")
ax1.set_ylabel("pixels (log scale)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Step 2: make the dataset iterable
#
# A `DataLoader` turns the dataset into batches. A *batch* (or mini-batch) is a group of
# examples that go through the network together; one pass of the loop over a batch, ending in
# one update of the weights, is an *iteration* (or step); one pass over every training example
# is an *epoch*. With 60,000 images and batches of 100, an epoch is 600 iterations, and the
# tutorial's 3,000 iterations are 5 epochs.
#
# `shuffle=True` draws a new random order at the start of every epoch, so the batches differ
# from one epoch to the next; the test set needs no shuffling. The loader calls `__getitem__`
# for each index of a batch and stacks the results: images `(100, 1, 28, 28)`, labels `(100,)`.

# %% tags=["plain"]
batch_size = 100
n_iters = 3000
train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
test_loader = DataLoader(test_set, batch_size=1000, shuffle=False)

images, labels = next(iter(train_loader))
print("a batch:", tuple(images.shape), tuple(labels.shape))
print(f"{len(train_loader)} iterations per epoch; {n_iters} iterations = {n_iters / len(train_loader):g} epochs")
assert images.shape == (100, 1, 28, 28) and len(train_loader) == 600

order = list(RandomSampler(train_set))  # what shuffle=True draws for one epoch
assert sorted(order) == list(range(60_000))  # every image once per epoch, in a random order
assert order[:10] != list(RandomSampler(train_set))[:10]  # and another order the next time

# %% [markdown]
# ## Why mini-batches?
#
# The loss we want to lower is the mean over all 60,000 images, and so is its gradient. A
# batch gives an *estimate* of that gradient from a sample. Why not use all 60,000 at once?
# Because one exact step costs as much as 600 estimated ones, and needs the whole dataset in
# memory at once. The estimate is rough: its error shrinks only like $1/\sqrt{B}$ for a batch
# of $B$ images. Yet it works, because the errors of successive steps point in random
# directions and largely cancel out, while the true gradient's direction adds up, step after
# step. (Stochastic gradient descent, *SGD*, is named for those random batches.)
#
# We can measure that error. For an untrained model C, compute the exact gradient of the
# first layer's weights over all training images, then 30 batch gradients at each batch size,
# and the typical distance between the two, relative to the exact gradient's size.

# %% tags=["plain"]
class ModelC(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 100)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = x.view(-1, 28 * 28)  # flatten: (B, 1, 28, 28) -> (B, 784)
        return self.fc2(self.relu(self.fc1(x)))


def first_layer_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    model.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    return model.fc1.weight.grad.clone()


torch.manual_seed(0)
probe = ModelC().to(device)
every_x = train_images.float().div(255).to(device)  # (60000, 28, 28), ToTensor's scale
every_y = train_labels.to(device)
exact = sum(  # the mean over 60,000 images, computed 10,000 at a time
    first_layer_gradient(probe, every_x[i : i + 10_000], every_y[i : i + 10_000]) * 10_000
    for i in range(0, 60_000, 10_000)
) / 60_000

noise = {}
generator = torch.Generator().manual_seed(0)
for b in (10, 100, 1000):
    errors = []
    for _ in range(30):
        idx = torch.randint(0, 60_000, (b,), generator=generator).to(device)
        g = first_layer_gradient(probe, every_x[idx], every_y[idx])
        errors.append(((g - exact).norm() / exact.norm()).item())
    noise[b] = sum(errors) / len(errors)
    print(f"batch {b:5}: a batch gradient is off by {noise[b]:.2f} of the exact gradient's size")
assert 5 < noise[10] / noise[1000] < 20  # 100 times the batch: about 10 times less error

# %% [markdown]
# A small batch makes many cheap, rough steps per epoch; a big one makes few, accurate ones.
# Below, model C trains for one epoch at three batch sizes, all at the tutorial's learning
# rate 0.1: 6,000 steps of 10 images, 600 of 100, or 60 of 1,000. The training loss is
# plotted against the images seen. Per image, the small batches learn more, because they
# update more often; on a GPU, though, a batch of 100 costs about the same time as a batch of
# 10, which is what pays for the larger batch there. The batch size and the learning rate
# also work together: bigger batches usually want a larger learning rate.

# %% tags=["plain"]
def one_epoch(batch_size: int, lr: float = 0.1) -> tuple[list[float], float]:
    """Train a fresh model C for one epoch; the running training loss every 6,000 images, and
    the test accuracy at the end."""
    torch.manual_seed(0)
    model = ModelC().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses, window, seen = [], [], 0
    for images, labels in DataLoader(train_set, batch_size=batch_size, shuffle=True):
        images, labels = images.to(device), labels.to(device)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        seen += len(labels)
        if seen % 6000 == 0:
            losses.append(sum(window) / len(window))
            window = []
    with torch.no_grad():
        correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in test_loader)
    return losses, 100 * correct / len(test_set)


by_batch = {b: one_epoch(b) for b in (10, 100, 1000)}
for b, (losses, accuracy) in by_batch.items():
    print(f"batch {b:5}: {60_000 // b:5} steps, test accuracy after one epoch {accuracy:.2f}%")
assert by_batch[10][1] > by_batch[100][1] > by_batch[1000][1]

# %% tags=["plain"] alt=["Two panels. Left: a log-log plot of the relative error of a batch gradient against the batch size, 10, 100 and 1000; the measured points fall along a line of slope minus one half, drawn for reference as 1 over the square root of the batch size. Right: the running training loss over one epoch against the images seen, one line per batch size: batch 10 falls fastest, batch 100 next, and batch 1000 stays highest, still near 1 at the end of the epoch."]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
sizes = list(noise)
ax1.loglog(sizes, [noise[b] for b in sizes], "o-", label="measured")
ax1.loglog(sizes, [noise[10] * (10 / b) ** 0.5 for b in sizes], "--", color="0.5", label="1/√B")
ax1.set_xlabel("batch size B")
ax1.set_ylabel("error of a batch gradient\n(relative to the exact gradient)")
ax1.legend()
for b, (losses, accuracy) in by_batch.items():
    ax2.plot(range(6000, 60_001, 6000), losses, "o-", label=f"batch {b} ({accuracy:.1f}% test)")
ax2.set_xlabel("training images seen")
ax2.set_ylabel("training loss (mean since the last point)")
ax2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Step 3: create the model class
#
# `ModelC`, written just above, is the tutorial's model C. `__init__` creates the layers:
# `fc1` maps 784 pixels to 100 hidden units, `relu` is the activation ($\max(0, z)$: negative
# sums become 0, positive ones pass unchanged; lesson 5 compares it with the sigmoid and tanh),
# and `fc2` maps the 100 hidden values to 10 logits. `forward` flattens each image to a row of
# 784 with `view(-1, 28 * 28)` (the `-1` is the batch size, whatever it is) and chains the
# three. It returns logits: the loss in step 5 applies the softmax itself.
#
# ## Step 4: instantiate the model class
#
# Creating the model draws its random initial weights, so we seed PyTorch's random number
# generator first: the same seed gives the same network, every time. `.to(device)` moves its
# parameters to the device chosen at the top.

# %% tags=["plain"]
torch.manual_seed(0)
model = ModelC().to(device)
print(model)
print(sum(p.numel() for p in model.parameters()), "parameters")
assert sum(p.numel() for p in model.parameters()) == 784 * 100 + 100 + 100 * 10 + 10

# %% [markdown]
# ## Step 5: instantiate the loss class
#
# `nn.CrossEntropyLoss` compares each row of logits with its label and returns the mean over
# the batch of $-\log p_{\text{label}}$, the negative log of the probability the model gave the
# right digit (lesson 6 takes it apart). An untrained network that spreads its bets evenly gets
# about $-\log(1/10) = \log 10 \approx 2.30$.

# %% tags=["plain"]
criterion = nn.CrossEntropyLoss()
with torch.no_grad():
    start_loss = criterion(model(images.to(device)), labels.to(device)).item()
print(f"loss of the untrained model on a batch: {start_loss:.3f} (log 10 = 2.303)")
assert abs(start_loss - 2.303) < 0.15

# %% [markdown]
# ## Step 6: instantiate the optimizer class
#
# Plain SGD with the tutorial's learning rate, 0.1: each step moves every parameter by 0.1
# times its gradient (lesson 2). `model.parameters()` hands the optimizer every weight and
# bias to update.

# %% tags=["plain"]
learning_rate = 0.1
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

# %% [markdown]
# ## Step 7: train the model, and test it as you go
#
# The loop, line by line:
#
# - `model.train()` puts the model in training mode. Some layers behave differently while
#   training (dropout, lesson 7); model C has none, but the habit avoids a silent bug later.
# - For each batch: move the images and labels to the device; `optimizer.zero_grad()` clears
#   the gradients of the last step (lesson 2: they would add up); `model(images)` runs the
#   forward pass; `criterion(...)` computes the loss; `loss.backward()` fills every
#   parameter's `.grad`; `optimizer.step()` moves the parameters.
# - Every 500 iterations, `accuracy` counts the right answers on the 10,000 test images, in
#   evaluation mode (`model.eval()`) and under `torch.no_grad()` (no graph needed), and then
#   puts the model back in training mode.
#
# The loader runs out at the end of each epoch, so an outer loop starts the next one until
# `n_iters` iterations are done. `loss.item()` copies the loss to Python; on a GPU that makes
# the program wait for the device, fine in a lesson, costly in a fast loop.

# %% tags=["plain"]
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Percentage of the loader's images whose largest logit is the right digit."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.to(device))
            correct += (logits.argmax(dim=1) == labels.to(device)).sum().item()
    model.train()
    return 100 * correct / len(loader.dataset)


def train(model, loader, optimizer, n_iters, test_every=500, quiet=False):
    """Train for n_iters iterations; the loss of every iteration, and the test accuracy at
    every test_every-th."""
    losses, accuracies = [], {}
    iteration = 0
    model.train()
    while iteration < n_iters:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            iteration += 1
            if iteration % test_every == 0:
                accuracies[iteration] = accuracy(model, test_loader)
                if not quiet:
                    print(f"Iteration: {iteration}. Loss: {loss.item():.4f}. Accuracy: {accuracies[iteration]:.2f}")
            if iteration == n_iters:
                break
    return losses, accuracies


started = time.perf_counter()
losses, accuracies = train(model, train_loader, optimizer, n_iters)
by_hand_seconds = time.perf_counter() - started
print(f"{n_iters} iterations in {by_hand_seconds:.1f} s")
assert len(losses) == n_iters and list(accuracies) == [500, 1000, 1500, 2000, 2500, 3000]
assert accuracies[3000] > 94.5  # the tutorial published 95% for model C

# %% tags=["plain"] alt="Two panels. Left: the training loss of each of the 3,000 iterations as a faint line, very noisy, with its running mean over 100 iterations drawn over it, falling from about 2.3 to about 0.15. Right: the test accuracy measured every 500 iterations, rising from about 91.5 percent to about 95.6 percent."
running = [sum(losses[max(0, i - 99) : i + 1]) / len(losses[max(0, i - 99) : i + 1]) for i in range(len(losses))]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
ax1.plot(losses, color="tab:blue", alpha=0.25, lw=0.5, label="each iteration")
ax1.plot(running, color="tab:blue", label="mean of the last 100")
ax1.set_xlabel("iteration")
ax1.set_ylabel("training loss")
ax1.set_ylim(0, 2.5)
ax1.legend()
ax2.plot(list(accuracies), list(accuracies.values()), "o-", color="tab:orange")
ax2.set_xlabel("iteration")
ax2.set_ylabel("test accuracy (%)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The loss of a single batch jumps around (one batch is a small, random sample), while its
# running mean falls smoothly. And `model.train()` and `model.eval()` change nothing for
# model C, which has no dropout:

# %% tags=["plain"]
x_test = test_set[0][0].unsqueeze(0).to(device)
with torch.no_grad():
    model.train()
    in_train = model(x_test)
    model.eval()
    in_eval = model(x_test)
assert torch.equal(in_train, in_eval)

# %% [markdown]
# ## The learning rate on a real network
#
# Lesson 2 showed the learning rate on a parabola. Here is model C, one epoch each, at four
# learning rates: 0.001, 0.1 (the tutorial's), 0.5, and 2.

# %% tags=["plain"]
by_rate = {}
for lr in (0.001, 0.1, 0.5, 2.0):
    torch.manual_seed(0)
    candidate = ModelC().to(device)
    rate_losses, rate_accuracy = train(
        candidate, train_loader, torch.optim.SGD(candidate.parameters(), lr=lr), 600, test_every=600, quiet=True
    )
    by_rate[lr] = (rate_losses, rate_accuracy[600], candidate)
    print(f"lr {lr:5}: test accuracy after one epoch {rate_accuracy[600]:.2f}%")

# %% tags=["plain"] alt="The running training loss over one epoch of model C at four learning rates. 0.001 (too small) barely falls from 2.3. 0.1 falls to about 0.3 and 0.5 lower still, to about 0.2. 2 (too large) shoots off the top of the chart in the first iterations, then settles near 2 and stays there, learning little."
fig, ax = plt.subplots(figsize=(8, 4))
for lr, (rate_losses, rate_accuracy, _) in by_rate.items():
    smooth = [sum(rate_losses[max(0, i - 49) : i + 1]) / len(rate_losses[max(0, i - 49) : i + 1]) for i in range(len(rate_losses))]
    ax.plot(smooth, label=f"lr {lr} ({rate_accuracy:.1f}% test)")
ax.set_xlabel("iteration")
ax.set_ylabel("training loss (mean of the last 50)")
ax.set_ylim(0, 3.5)
ax.legend()
plt.show()

# %% [markdown]
# At 0.001 the network has barely started after an epoch: each step is too small. At 0.1 and
# 0.5 it learns well (0.5 is better here; the tutorial's choice is on the safe side). At 2 the
# first steps are so large that they throw the weights far off, and the network never
# recovers: it gets only a few test images in ten right. What happened inside is a lesson-5
# story: almost every hidden ReLU unit *died*. Its sum is negative for every image, so it
# outputs 0, no gradient reaches its weights, and it never changes again.

# %% tags=["plain"]
accuracy_at = {lr: acc for lr, (_, acc, _) in by_rate.items()}
assert accuracy_at[0.001] < 80 < accuracy_at[0.1] < accuracy_at[0.5]
assert accuracy_at[2.0] < 40
broken = by_rate[2.0][2]
with torch.no_grad():
    hidden = broken.relu(broken.fc1(test_images.float().div(255).view(-1, 784).to(device)))
dead = (hidden.max(dim=0).values == 0).float().mean().item()
print(f"lr 2: {dead:.0%} of the hidden units output 0 for every test image")
assert dead > 0.85

# %% [markdown]
# ## The same in mlplab
#
# `mlplab.train` is this loop. A `TrainConfig` holds every choice made above: model C (the
# *preset* `c`, a named network), plain SGD at a constant learning rate of 0.1, batches of 100,
# the number of iterations, pixels scaled to [0, 1] and no more (`normalization="none"`), and
# the seed. It keeps the whole dataset as one tensor and takes each batch by indexing it, so it
# needs no `DataLoader`.
#
# Does it take the same steps? It builds the same initial network from the same seed, and it
# draws each epoch's order as `torch.randperm(60000, generator)` from a generator seeded with
# the seed, exactly what a `RandomSampler` with that generator draws for its first epoch. So
# our loop, given that sampler, sees the same 600 batches as `mlplab.train` with
# `engine="autograd"` (`nn.Module` and autograd, as here), and must end with the same weights.

# %%
config = mlplab.TrainConfig(
    preset="c",
    optimizer="sgd",
    lr=0.1,
    schedule="constant",
    batch_size=100,
    iterations=600,
    eval_every=600,
    normalization="none",
    engine="autograd",
    seed=0,
)
theirs = mlplab.train(config, mnist).model

torch.manual_seed(0)
ours = ModelC().to(device)
same_order = DataLoader(train_set, batch_size=100, sampler=RandomSampler(train_set, generator=torch.Generator().manual_seed(0)))
train(ours, same_order, torch.optim.SGD(ours.parameters(), lr=0.1), 600, test_every=600, quiet=True)

largest = max((ours.state_dict()[k].cpu() - v.cpu()).abs().max().item() for k, v in theirs.state_dict().items())
print(f"after 600 identical steps, the largest difference between the two models' weights: {largest:.1e}")
assert set(theirs.state_dict()) == set(ours.state_dict())  # fc1.weight, fc1.bias, fc2.weight, fc2.bias
assert largest < 1e-5

# %% [markdown]
# The weights agree to float32 rounding (ToTensor divides by 255, mlplab multiplies by 1/255).
# The full 3,000 iterations, with mlplab's default engine for this network, print the
# tutorial's lines as they go. The same run from a terminal:
#
# ```
# mlplab train --preset c --optimizer sgd --lr 0.1 --schedule constant --batch-size 100 \
#     --iterations 3000 --eval-every 500 --normalization none
# ```

# %%
result = mlplab.train(config.replace(iterations=3000, eval_every=500, engine="auto"), mnist)
for record in result.history:
    if record["kind"] == "eval":
        print(f"Iteration: {record['iteration']}. Accuracy: {record['test_accuracy']:.2f}")
print(f"{result.seconds:.1f} s on the {result.engine} engine; our loop took {by_hand_seconds:.1f} s")
assert result.test.accuracy > 94.5

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment learning-rates`, or with a lab running,
# http://127.0.0.1:8008/?experiment=learning-rates) trains model C at four learning rates side by side (and `--experiment batch-sizes` at three batch sizes, drawn against epochs), with the network drawn as it learns. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** With batches of 64, how many iterations make an epoch, and how many epochs are 3,000
# iterations? Check with a `DataLoader` (mind the last, smaller batch).

# %% tags=["solution"]
loader_64 = DataLoader(train_set, batch_size=64, shuffle=True)
print(len(loader_64), "iterations per epoch;", f"3000 iterations = {3000 / len(loader_64):.2f} epochs")
assert len(loader_64) == 938  # 937 full batches and one of 60000 - 937 * 64 = 32
assert 60_000 - 937 * 64 == 32

# %% [markdown]
# **2.** Write `evaluate(model, loader)` that returns the mean test loss as well as the
# accuracy, and check it against `mlplab.evaluate` on our trained model C (mlplab's preset `c`
# has the same parameter names, so the weights load into it).

# %% tags=["solution"]
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.to(device))
            labels = labels.to(device)
            total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(dim=1) == labels).sum().item()
    model.train()
    n = len(loader.dataset)
    return total_loss / n, 100 * correct / n


test_loss, test_accuracy = evaluate(model, test_loader)
same_model = mlplab.build_model("c")
same_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
metrics = mlplab.evaluate(same_model, mnist.test, mlplab.Normalization(0.0, 1.0))
print(f"ours: loss {test_loss:.4f}, accuracy {test_accuracy:.2f}%; mlplab: loss {metrics.loss:.4f}, accuracy {metrics.accuracy:.2f}%")
assert abs(test_loss - metrics.loss) < 1e-4 and abs(test_accuracy - metrics.accuracy) < 0.02

# %% [markdown]
# **3.** Testing needs no `DataLoader`: with no gradients to keep, the 10,000 test images fit
# in one batch. Compute the accuracy that way and check it against `accuracy()`.

# %% tags=["solution"]
model.eval()
with torch.no_grad():
    all_logits = model(test_images.float().div(255).to(device))  # (10000, 28, 28) -> (10000, 10)
model.train()
one_batch = 100 * (all_logits.argmax(dim=1) == test_labels.to(device)).float().mean().item()
print(f"one batch of 10,000: {one_batch:.2f}%; accuracy(): {accuracy(model, test_loader):.2f}%")
assert abs(one_batch - accuracy(model, test_loader)) < 0.02

# %% [markdown]
# Next, [lesson 4](04_models_a_to_e.ipynb) runs the tutorial's five models, A to E, through
# these steps at its full budget, and compares them.
