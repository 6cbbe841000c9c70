# %% [markdown]
# # 4. Models A to E
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# The classic feed-forward tutorial trains five networks with the same recipe and publishes
# their test accuracies:
#
# | model | hidden layers | activation | published |
# |---|---|---|---|
# | A | one of 100 units | sigmoid | 91% |
# | B | one of 100 units | tanh | 95% |
# | C | one of 100 units | ReLU | 95% |
# | D | two of 100 units | ReLU | 96% |
# | E | three of 100 units | ReLU | 97% |
#
# The recipe is lesson 3's seven steps: pixels scaled to [0, 1] (`ToTensor` only), batches of
# 100, plain SGD at learning rate 0.1, 3,000 iterations (5 epochs), the test accuracy every 500.
# Here all five run at that full budget, in plain PyTorch, and only step 3, the model class,
# changes from one to the next. Their learning curves share one plot, so you can see the
# activation and the depth help, not only read it.
#
# The plain-PyTorch cells of this page (all but the mlplab section) run on their own: copied
# into an empty notebook with the one cell that loads MNIST's tensors, they need only `torch`
# and `matplotlib`. The activations get a lesson of their own next (lesson 5); here the
# *sigmoid* is $\sigma(z) = 1/(1 + e^{-z})$, *tanh* is $\tanh z = 2\sigma(2z) - 1$ (the same S,
# from −1 to 1), and the *ReLU* is $\max(0, z)$.

# %% tags=["plain"]
import time

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

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
# ## Steps 1 and 2: the dataset and its loaders
#
# As in lesson 3: a `Dataset` that scales each image as `ToTensor` does, and loaders of 100.

# %% tags=["plain"]
class MNISTDataset(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i].float().div(255).unsqueeze(0), self.labels[i]  # ToTensor


batch_size = 100
n_iters = 3000
train_loader = DataLoader(MNISTDataset(train_images, train_labels), batch_size=batch_size, shuffle=True)
test_loader = DataLoader(MNISTDataset(test_images, test_labels), batch_size=1000)
print(f"{n_iters} iterations of {batch_size} = {n_iters * batch_size / len(train_images):g} epochs")

# %% [markdown]
# ## Step 3: five model classes
#
# Each class takes the sizes as arguments, as the tutorial's do. A, B and C differ only in the
# activation; D and E add a second and a third hidden layer of 100 ReLU units. Every
# `forward` flattens the images and returns logits.

# %% tags=["plain"]
class ModelA(nn.Module):  # one hidden layer, sigmoid
    def __init__(self, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.sigmoid = nn.Sigmoid()
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        return self.fc2(self.sigmoid(self.fc1(x)))


class ModelB(nn.Module):  # one hidden layer, tanh
    def __init__(self, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.tanh = nn.Tanh()
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        return self.fc2(self.tanh(self.fc1(x)))


class ModelC(nn.Module):  # one hidden layer, ReLU
    def __init__(self, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        return self.fc2(self.relu(self.fc1(x)))


class ModelD(nn.Module):  # two hidden layers, ReLU
    def __init__(self, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


class ModelE(nn.Module):  # three hidden layers, ReLU
    def __init__(self, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden_dim, hidden_dim)
        self.relu3 = nn.ReLU()
        self.fc4 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        x = self.relu3(self.fc3(x))
        return self.fc4(x)


models = {"A": ModelA, "B": ModelB, "C": ModelC, "D": ModelD, "E": ModelE}
published = {"A": 91, "B": 95, "C": 95, "D": 96, "E": 97}
for name, model_class in models.items():
    print(name, sum(p.numel() for p in model_class().parameters()), "parameters")

# %% [markdown]
# ## Steps 4 to 7, the same for every model
#
# One function holds the rest of the recipe: instantiate the model (after seeding, so each
# run is repeatable) and move it to the device, the loss, the optimizer, then the loop, which
# records every iteration's loss and the test accuracy every 500 iterations.

# %% tags=["plain"]
def test_accuracy(model):
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in test_loader:
            correct += (model(images.to(device)).argmax(dim=1) == labels.to(device)).sum().item()
    model.train()
    return 100 * correct / len(test_loader.dataset)


def train_and_test(model_class, seed=0, lr=0.1):
    torch.manual_seed(seed)
    model = model_class().to(device)  # step 4
    criterion = nn.CrossEntropyLoss()  # step 5
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # step 6
    losses, accuracies, iteration = [], {}, 0  # step 7
    model.train()
    while iteration < n_iters:
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            iteration += 1
            if iteration % 500 == 0:
                accuracies[iteration] = test_accuracy(model)
            if iteration == n_iters:
                break
    return model, losses, accuracies

# %% [markdown]
# ## Five runs
#
# Each run takes several seconds on two CPU cores, most of it spent in the `DataLoader`
# gathering 100 images one `__getitem__` at a time.

# %% tags=["plain"]
runs = {}
for name, model_class in models.items():
    started = time.perf_counter()
    runs[name] = train_and_test(model_class)
    _, losses, accuracies = runs[name]
    curve = ", ".join(f"{a:.2f}" for a in accuracies.values())
    print(f"model {name}: test accuracy every 500 iterations: {curve}  ({time.perf_counter() - started:.1f} s)")

# %% tags=["plain"] alt="Two panels, one line per model A to E. Left: the training loss averaged over the last 100 iterations, across 3,000 iterations; A (sigmoid) stays highest, B (tanh) and C (ReLU) below it, D lower, and E lowest at the end. Right: the test accuracy measured every 500 iterations; A ends lowest, near 92 percent, then B, C, D, and E highest, near 97 percent."
def running_mean(values, n=100):
    return [sum(values[max(0, i - n + 1) : i + 1]) / len(values[max(0, i - n + 1) : i + 1]) for i in range(len(values))]


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
for name, (model, losses, accuracies) in runs.items():
    ax1.plot(running_mean(losses), label=f"model {name}")
    ax2.plot(list(accuracies), list(accuracies.values()), "o-", label=f"model {name}")
ax1.set_ylim(0, 1.0)
ax1.set_xlabel("iteration")
ax1.set_ylabel("training loss (mean of the last 100)")
ax2.set_ylim(84, 98)
ax2.set_xlabel("iteration")
ax2.set_ylabel("test accuracy (%)")
for ax in (ax1, ax2):
    ax.legend()
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Beside the published numbers

# %% tags=["plain"]
final = {name: accuracies[n_iters] for name, (_, _, accuracies) in runs.items()}
late_loss = {name: sum(losses[-300:]) / 300 for name, (_, losses, _) in runs.items()}
print(f"{'model':6} {'test accuracy':>14} {'published':>10} {'loss, last 300':>15}")
for name in models:
    print(f"{name:6} {final[name]:13.2f}% {published[name]:9}% {late_loss[name]:15.4f}")

# %% [markdown]
# Every model lands within a point of its published accuracy (the tutorial printed whole
# numbers), and what the table and the curves show is what the tutorial claims:
#
# - **The activation matters.** With the same single hidden layer, the sigmoid (A) learns
#   slowest and ends lowest; tanh (B) and ReLU (C) do much better. Lesson 5 shows why: the
#   sigmoid's slope is at most 0.25, so gradients shrink as they pass through it.
# - **Depth helps.** Adding a second (D) and a third (E) hidden layer lowers the training loss
#   and raises the test accuracy, in that order. The deepest starts slower (at the first
#   test, after 500 iterations, model E is still behind C and D), then passes them.
#
# The checks below hold the page to those claims: a margin under each published number, and
# the order of the five, in accuracy and in training loss.

# %% tags=["plain"]
for name in models:
    assert final[name] >= published[name] - 1.0, f"model {name}: {final[name]:.2f}%"
assert final["A"] < final["B"] and final["A"] < final["C"]  # the activation
assert final["C"] < final["D"] < final["E"]  # depth
assert late_loss["A"] > late_loss["B"] > late_loss["C"] > late_loss["D"] > late_loss["E"]
first = {name: accuracies[500] for name, (_, _, accuracies) in runs.items()}
assert first["E"] < min(first["C"], first["D"])  # the deepest starts slower
print("every model within a point of its published number; A < B, C < D < E")

# %% [markdown]
# ## The five networks, drawn
#
# The same sizes as diagrams: 784 inputs, hidden layers of 100 units and 10 logits, six units
# of each layer drawn. Model E has 99,710 parameters, A, B and C 79,510 each: depth adds 10,100 per layer.

# %% alt="Five small network diagrams side by side, titled model A to model E with their parameter counts. A, B and C each have an input column of 784, one hidden column of 100 and an output column of 10, titled sigmoid, tanh and relu. D has two hidden columns of 100 and E three, all relu."
from mlplab.viz.diagram import draw_network

fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
for ax, name in zip(axes, models):
    spec = mlplab.PRESETS[name.lower()][0]  # for example "784-100-10:sigmoid"
    net = mlplab.build_model(spec)
    sizes = [784] + [layer.out_features for layer in net.linears()]
    hidden = spec.split(":")[1]
    draw_network(ax, sizes, max_units=6, names=[str(n) for n in sizes])
    ax.set_title(
        f"model {name}: {len(sizes) - 2} × 100 {hidden}\n{sum(p.numel() for p in net.parameters()):,} parameters",
        fontsize=10,
    )
plt.show()
assert [mlplab.build_model(mlplab.PRESETS[n.lower()][0]).spec.num_parameters for n in models] == [
    79_510, 79_510, 79_510, 89_610, 99_710,
]

# %% [markdown]
# ## On a GPU
#
# The tutorial's GPU version changes only two steps, and so does this page: step 4 moves the
# model to the device (`model_class().to(device)`), and step 7 moves each batch
# (`images.to(device)`, `labels.to(device)`). `device` is chosen once at the top, so the same
# cells run on a CUDA or MPS GPU where there is one, and on the CPU otherwise.
#
# ## The same in mlplab
#
# mlplab has the five as *presets*, named networks (`a` to `e`), and the tutorial's recipe for
# each as a ready experiment: `mlplab reproduce` runs them over several seeds and prints the
# published number beside each mean. From a terminal:
#
# ```
# mlplab reproduce --only preset-a,preset-b,preset-c,preset-d,preset-e
# ```
#
# Below, each experiment's config, run once with seed 0 through `mlplab.train`. It shuffles
# with its own seeded generator, so its batches differ from the `DataLoader`'s, and its
# accuracies differ a little from ours; both must stay within a point of each other.

# %%
from mlplab.experiments.reproduce import EXPERIMENTS

by_mlplab = {}
for experiment in EXPERIMENTS:
    if experiment.key.startswith("preset-"):
        name = experiment.key.removeprefix("preset-").upper()
        result = mlplab.train(experiment.config.replace(seed=0), mnist)
        by_mlplab[name] = (result.test.accuracy, result.seconds, result.engine)

print(f"{'model':6} {'plain PyTorch':>14} {'mlplab':>8} {'published':>10} {'mlplab s':>9}")
for name in models:
    acc, seconds, engine = by_mlplab[name]
    print(f"{name:6} {final[name]:13.2f}% {acc:7.2f}% {published[name]:9}% {seconds:9.1f}")
    assert abs(acc - final[name]) < 1.0, name
print(f"(mlplab's {by_mlplab['E'][2]} engine)")

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment models-a-e`, or with a lab running,
# http://127.0.0.1:8008/?experiment=models-a-e) trains the five models side by side, their curves on one screen as they grow (and `--experiment depth-width` compares wider and deeper networks). [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** Work out the parameter counts of models A to E by hand, and check them against the
# classes.

# %% tags=["solution"]
def count(sizes):
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


by_hand = {"A": count([784, 100, 10]), "B": count([784, 100, 10]), "C": count([784, 100, 10]),
           "D": count([784, 100, 100, 10]), "E": count([784, 100, 100, 100, 10])}
for name, model_class in models.items():
    assert by_hand[name] == sum(p.numel() for p in model_class().parameters())
print(by_hand)

# %% [markdown]
# **2.** Save the trained model E's weights with `torch.save(model.state_dict(), path)`, load
# them into a fresh `ModelE` with `torch.load(path, weights_only=True)`, and check the test
# accuracy is unchanged. (`weights_only=True` refuses anything but tensors, so loading a file
# cannot run code hidden in it.)

# %% tags=["solution"]
trained_e = runs["E"][0]
torch.save(trained_e.state_dict(), "model_e.pt")
reloaded = ModelE().to(device)
reloaded.load_state_dict(torch.load("model_e.pt", weights_only=True))
print(f"reloaded model E: {test_accuracy(reloaded):.2f}% (trained: {final['E']:.2f}%)")
assert test_accuracy(reloaded) == final["E"]

# %% [markdown]
# **3.** Models D and E repeat the same two lines per layer. Write one class whose depth is an
# argument, keeping the hidden layers in an `nn.ModuleList` (a list whose modules are
# registered, unlike a Python list). Check that depth 3 has model E's parameter count, and
# that with model E's trained weights copied in, it gives the same logits.

# %% tags=["solution"]
class DeepReLU(nn.Module):
    def __init__(self, depth, input_dim=28 * 28, hidden_dim=100, output_dim=10):
        super().__init__()
        sizes = [input_dim] + [hidden_dim] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


deep = DeepReLU(3).to(device)
assert sum(p.numel() for p in deep.parameters()) == sum(p.numel() for p in ModelE().parameters())
with torch.no_grad():
    for mine, theirs in zip([*deep.hidden, deep.out], [trained_e.fc1, trained_e.fc2, trained_e.fc3, trained_e.fc4]):
        mine.weight.copy_(theirs.weight)
        mine.bias.copy_(theirs.bias)
    batch = next(iter(test_loader))[0].to(device)
    assert torch.allclose(deep(batch), trained_e(batch), atol=1e-5)
print("DeepReLU(3) with model E's weights == model E")

# %% [markdown]
# Next, [lesson 5](05_activations_init.ipynb) looks inside the activations: why the sigmoid
# learns slowly, what dies in a ReLU network, and why the starting weights matter.
