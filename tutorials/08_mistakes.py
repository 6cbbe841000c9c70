# %% [markdown]
# # 8. What the network gets wrong
#
# *Run it yourself: in mlplab's folder, `pip install -e '.[lessons]'` (the `lessons` extra
# brings matplotlib, Pillow and a Jupyter kernel), then open this page's notebook (the
# download button above) in Jupyter.*
#
# An accuracy is one number. This lesson opens it up for a trained network: the probabilities
# behind one answer (the classic tutorials' `view_classify`), where the errors fall (the
# confusion matrix), the errors the network was surest of, what the first layer has learned to
# look for, and how it does on a digit drawn the way a person draws one. First in plain
# PyTorch and matplotlib, then with mlplab's run directories, pictures and `predict`.

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
# ## A trained network
#
# The `nn.Sequential` tutorial's network, 784-128-64-10 with ReLU, returning logits, trained
# for two epochs with Adam on inputs normalised to [−1, 1] (lessons 3 and 5). A few seconds.

# %% tags=["plain"]
def to_inputs(images):
    return ((images.float() / 255 - 0.5) / 0.5).view(len(images), -1).to(device)


x_train, y_train = to_inputs(train_images), train_labels.to(device)
x_test, y_test = to_inputs(test_images), test_labels.to(device)

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
generator = torch.Generator().manual_seed(0)
for epoch in range(2):
    for idx in torch.randperm(60_000, generator=generator).split(64):
        idx = idx.to(device)
        optimizer.zero_grad()
        F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
        optimizer.step()

model.eval()
with torch.no_grad():
    probs = torch.softmax(model(x_test), dim=1)  # (10000, 10)
predicted = probs.argmax(dim=1)
accuracy = 100 * (predicted == y_test).float().mean().item()
print(f"test accuracy {accuracy:.2f}%")
assert accuracy > 93

# %% [markdown]
# ## One image and its probabilities
#
# The classic tutorials' `view_classify` draws an image beside a bar chart of its ten class
# probabilities. Here it is for the first test image, and for the one the network found most
# uncertain (its largest probability is the smallest of all 10,000).

# %% tags=["plain"]
def view_classify(ax_image, ax_bars, image, p, title):
    ax_image.imshow(image, cmap="gray")
    ax_image.set_title(title)
    ax_image.axis("off")
    ax_bars.barh(range(10), p.cpu())
    ax_bars.set_yticks(range(10))
    ax_bars.set_xlim(0, 1.05)
    ax_bars.set_title("class probability")


unsure = int(probs.max(dim=1).values.argmin())

# %% tags=["plain"] alt=["Two image-and-bar-chart pairs. Left pair: test image 0, a handwritten 7, beside bars with nearly all the probability on 7. Right pair: the test image the network was least sure of, beside bars whose largest probability is under one half, spread over two or three digits."]
fig, axes = plt.subplots(1, 4, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 1.3, 1, 1.3]})
view_classify(axes[0], axes[1], test_images[0], probs[0], f"test image 0, label {int(test_labels[0])}")
view_classify(axes[2], axes[3], test_images[unsure], probs[unsure], f"test image {unsure}, label {int(test_labels[unsure])}")
fig.tight_layout()
plt.show()
print(f"image {unsure}: probabilities", [round(v, 2) for v in probs[unsure].tolist()])
assert int(predicted[0]) == int(test_labels[0]) == 7 and probs[0, 7] > 0.9
assert probs[unsure].max() < 0.5

# %% [markdown]
# ## The confusion matrix
#
# Row $i$, column $j$ counts the test images of digit $i$ that the network called $j$. The
# diagonal holds the right answers, so its sum over the total is the accuracy, and each row
# adds up to the number of test images of that digit. `index_put_` with `accumulate=True`
# adds 1 at each `(true, predicted)` pair, all 10,000 at once.

# %% tags=["plain"]
confusion = torch.zeros(10, 10, dtype=torch.long)
confusion.index_put_((test_labels, predicted.cpu()), torch.ones(10_000, dtype=torch.long), accumulate=True)
assert int(confusion.diag().sum()) == int((predicted == y_test).sum())
assert torch.equal(confusion.sum(dim=1), torch.bincount(test_labels, minlength=10))

off = confusion.clone().fill_diagonal_(0)
top = off.flatten().argsort(descending=True)[:5]
print("the network's habits, the largest cells off the diagonal:")
for cell in top.tolist():
    i, j = divmod(cell, 10)
    print(f"  true {i} called {j}: {int(off[i, j])} times")

# %% [markdown]
# ## The most confident mistakes
#
# Among the wrong answers, which did the network give with the highest probability? Some are
# the network's fault; many are digits a person would hesitate over too, and a few are labelled
# doubtfully in MNIST itself.

# %% tags=["plain"]
confidence = probs.max(dim=1).values
wrong = torch.nonzero(predicted != y_test).squeeze(1)
worst = wrong[confidence[wrong].argsort(descending=True)]
print(f"{len(wrong)} mistakes; the surest of them is made with probability {confidence[worst[0]]:.3f}")
assert (predicted[worst] != y_test[worst]).all()
assert (confidence[worst][:-1] >= confidence[worst][1:]).all()
assert confidence[worst[0]] > 0.9  # some mistakes are made with near certainty

# %% tags=["plain"] alt="Twelve test digits in a 2 by 6 grid, the network's most confident mistakes, each titled with its true label, the network's answer and the probability it gave that answer, all above 0.9. Several are oddly written digits that resemble the wrong answer."
fig, axes = plt.subplots(2, 6, figsize=(11, 4.4))
for ax, i in zip(axes.flat, worst[:12].tolist()):
    ax.imshow(test_images[i], cmap="gray")
    ax.set_title(f"true {int(test_labels[i])}, said {int(predicted[i])}\np = {confidence[i]:.2f}", fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the first layer looks for
#
# Each of the 128 units of the first layer computes $z = w \cdot x + b$ over the 784 pixels:
# its weight row *is* a 28×28 picture. The unit responds strongly to images whose ink falls on
# its red (positive) weights and avoids its blue (negative) ones. Here are the first 32, each
# tile scaled to its own largest weight.

# %% tags=["plain"]
w = model[0].weight.detach().cpu()  # (128, 784): one row per unit
b = model[0].bias.detach().cpu()
unit, x0 = 0, x_test[:1].cpu()
with torch.no_grad():
    z0 = model[0](x_test[:1]).cpu()[0]
by_tile = float((w[unit].view(28, 28) * x0.view(28, 28)).sum() + b[unit])
print(f"unit {unit} on test image 0: the layer gives {float(z0[unit]):.5f}, tile · image + b = {by_tile:.5f}")
assert abs(by_tile - float(z0[unit])) < 1e-4

# %% tags=["plain"] alt="Thirty-two 28 by 28 tiles in a 4 by 8 grid, one per first-layer unit, red for positive weights and blue for negative, each scaled to its own largest weight. Most show smooth blobs and strokes, parts of digits; a few look like fine speckled noise."
fig, axes = plt.subplots(4, 8, figsize=(10, 5.3))
for k, ax in enumerate(axes.flat):
    tile = w[k].view(28, 28)
    limit = float(tile.abs().max())
    ax.imshow(tile, cmap="bwr", vmin=-limit, vmax=limit)
    ax.set_title(f"unit {k}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Most tiles show strokes and blobs, pieces of digits. The ones that look like noise are
# *dead* units (lesson 5): their sum is negative for every training image, so they output 0
# and receive no gradient. They died in the first steps, when Adam moved all their background
# weights together on inputs whose background is −1, and their weights have barely moved since
# their random start. Scaled to its own largest weight, a random start looks like loud noise.
# We can check both halves of that: how many units never fire, and how far each unit's weights
# moved from where they began (the same seed rebuilds the initial network).

# %% tags=["plain"]
with torch.no_grad():
    fires = (model[0](x_train) > 0).float().mean(dim=0).cpu()  # share of images each unit fires for
dead = torch.nonzero(fires == 0).squeeze(1)
live = torch.nonzero(fires > 0).squeeze(1)
torch.manual_seed(0)
start = nn.Linear(784, 128).weight.detach()  # the first layer as it was built, before training
moved = (w - start).abs().max(dim=1).values
print(f"{len(dead)} of 128 units never fire: {dead.tolist()}")
print(f"largest change of any weight since the start, median: dead units {moved[dead].median():.3f}, live units {moved[live].median():.3f}")
assert len(dead) > 0
assert moved[dead].median() < 0.25 * moved[live].median()

# %% [markdown]
# ## The same in mlplab
#
# `mlplab.run` is `mlplab.train` plus a *run directory*: the config, the metrics as they come,
# and at the end `model.safetensors`, a file holding the weights and everything needed to use
# them (the spec, the class names, the normalisation). *safetensors* is a file format for
# tensors that, unlike a pickle, cannot carry code, so loading a file someone gives you is
# safe. The run writes under `runs/` in the current folder, as `mlplab train` does. Here the
# same network for 500 iterations of 256 with mlplab's defaults (Adam, one-cycle schedule).

# %%
from IPython.display import Image, display

from mlplab.training.evaluate import predict_logits
from mlplab.viz import plots

config = mlplab.TrainConfig(model="784-128-64-10:relu", iterations=500, batch_size=256, eval_every=500, seed=0)
run_dir, result = mlplab.run(config, mnist)
print("run directory:", run_dir)
print("files:", sorted(p.name for p in run_dir.iterdir()))
assert result.test.accuracy > 95.0

ckpt = mlplab.load_checkpoint(run_dir)  # rebuilds the network from the file alone, in eval mode
mine = ckpt.model
mlplab_probs = torch.softmax(predict_logits(mine, mnist.test.x, ckpt.norm), dim=1)
print(ckpt.info["spec"], "normalisation", (ckpt.norm.mean, ckpt.norm.std))

# %% [markdown]
# mlplab's `evaluate` counts the same confusion matrix as ours: given our plain network's
# weights (mlplab's `784-128-64-10:relu` has the same layers, named `fc1`, `fc2`, `fc3`), it
# returns exactly our matrix.

# %%
same = mlplab.build_model("784-128-64-10:relu")
same.load_state_dict({f"fc{i + 1}.{k}": v.cpu() for i, layer in enumerate([model[0], model[2], model[4]]) for k, v in layer.state_dict().items()})
metrics = mlplab.evaluate(same, mnist.test, mlplab.Normalization(0.5, 0.5))
assert torch.equal(torch.tensor(metrics.confusion), confusion)
print(f"mlplab.evaluate on our network: {metrics.accuracy:.2f}%, the same confusion matrix")

# %% [markdown]
# `mlplab plot RUN` draws a run's pictures as PNG files, with the functions of
# `mlplab.viz.plots`: `view_classify`, the confusion matrix, the confident mistakes and the
# first layer's weights. Two of them here, for the mlplab run:

# %% alt=["mlplab's confusion matrix heatmap for its run on the MNIST test set: ten rows of true digits against ten columns of answers, dark cells along the diagonal holding almost all of each row, and a few lighter cells off it, the largest of them 9 called 4 and 4 called 9, each cell printed with its count.", "mlplab's grid of the run's most confident mistakes: eighteen test digits, each titled with its true label, the answer given and that answer's probability."]
display(Image(filename=plots.confusion_heatmap(result.test.confusion, ckpt.classes, "confusion.png")))
mistakes_png = plots.confident_mistakes(mnist.test.x, mnist.test.y, mlplab_probs, ckpt.classes, "mistakes.png", n=18)
display(Image(filename=mistakes_png))

# %% [markdown]
# ## A digit drawn by hand
#
# Test images come prepared: white on black, the digit scaled into a 20×20 box and centred by
# its centre of mass in 28×28. A drawing is black on white, of any size, anywhere on the canvas.
# `mlplab.predict` (behind `mlplab predict` and the drawing page of `mlplab serve`) prepares any
# image the way MNIST was made: grayscale, inverted when the background is light, cropped to
# the ink, the longer side scaled to 20 pixels, centred by mass. We draw a 7 with Pillow (the
# imaging library) as a person would with a thick pen, off-centre on a 280×280 canvas.

# %%
import json
import subprocess
import sys

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

canvas = PILImage.new("L", (280, 280), color=255)  # white paper
pen = ImageDraw.Draw(canvas)
pen.line([(60, 50), (200, 45), (205, 55)], fill=0, width=22, joint="curve")
pen.line([(203, 52), (150, 150), (115, 250)], fill=0, width=22, joint="curve")
canvas.save("drawn_7.png")

(prediction,) = mlplab.predict(run_dir, [canvas], names=["drawn 7"])
seen = prediction.input  # (28, 28) in [0, 1]: what the network is given
print("top 3:", [(c, round(p, 4)) for c, p in prediction.top])

# %% alt="Three panels. Left: the drawing, a thick black 7 on a white 280 by 280 canvas, off-centre. Middle: what the network sees, the same 7 inverted to white on black, shrunk to 28 by 28 and centred. Right: a bar chart of its ten class probabilities, almost all of it on 7."
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(10, 3))
ax1.imshow(canvas, cmap="gray", vmin=0, vmax=255)
ax1.set_title("the drawing, 280×280")
ax2.imshow(seen, cmap="gray", vmin=0, vmax=1)
ax2.set_title("what the network sees, 28×28")
for ax in (ax1, ax2):
    ax.axis("off")
ax3.barh(range(10), prediction.probs)
ax3.set_yticks(range(10))
ax3.set_title("class probability")
fig.tight_layout()
plt.show()

ys, xs = np.indices(seen.shape)
mass = seen.sum()
centre = ((ys * seen).sum() / mass, (xs * seen).sum() / mass)
rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
assert seen.shape == (28, 28) and seen.min() >= 0.0 and seen.max() <= 1.0
assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) <= 20
assert abs(centre[0] - 14) <= 1.0 and abs(centre[1] - 14) <= 1.0
assert prediction.top[0][0] == "7", f"the drawn 7 was read as {prediction.top[0][0]}"

# %% [markdown]
# The command line gives the same answer from the saved PNG, because it runs the same function:
#
# ```
# mlplab predict RUN_DIR drawn_7.png --json
# ```

# %%
cli = subprocess.run(
    [sys.executable, "-m", "mlplab", "predict", str(run_dir), "drawn_7.png", "--json"],
    capture_output=True, text=True, check=True,
)
answer = json.loads(cli.stdout)["results"][0]
print("mlplab predict:", [(t["class"], round(t["probability"], 4)) for t in answer["top"]])
assert np.allclose(answer["probabilities"], prediction.probs, atol=1e-6)

# %% [markdown]
# ## See it live
#
# The lab (`mlplab lab --experiment models-a-e`, or with a lab running,
# http://127.0.0.1:8008/?experiment=models-a-e) has the confusion matrix of any of its runs (click a cell for its test images) and a *Look inside* tab where a digit you draw goes through every layer. [Experiments to try](../how-to/lab.md)
# says what to look for in each.

# %% [markdown]
# ## Exercises
#
# **1.** From the confusion matrix, compute each digit's *recall* (the share of its test images
# called right: the diagonal over the row sum) and *precision* (the share of the images called
# that digit that really are: the diagonal over the column sum). Which digit has the lowest
# precision?

# %% tags=["solution"]
recall = confusion.diag().float() / confusion.sum(dim=1)
precision = confusion.diag().float() / confusion.sum(dim=0)
print("recall:   ", [f"{v:.3f}" for v in recall.tolist()])
print("precision:", [f"{v:.3f}" for v in precision.tolist()])
print("lowest precision: digit", int(precision.argmin()))
assert torch.allclose((confusion.diag().sum() / confusion.sum()).float(), torch.tensor(accuracy / 100), atol=1e-6)
assert (recall > 0.85).all() and (precision > 0.85).all()

# %% [markdown]
# **2.** How sure is the network when it is right, and when it is wrong? Compare the median
# largest probability on the right and on the wrong answers.

# %% tags=["solution"]
right_conf = confidence[predicted == y_test].median().item()
wrong_conf = confidence[predicted != y_test].median().item()
print(f"median confidence: right answers {right_conf:.3f}, wrong answers {wrong_conf:.3f}")
assert right_conf > wrong_conf

# %% [markdown]
# **3.** Put a dead unit to the test: set its weights to zero and check that no test answer
# changes (it was contributing nothing), then do the same to the busiest live unit.

# %% tags=["solution"]
def answers_without(unit):
    with torch.no_grad():
        saved = model[0].weight[unit].clone(), model[0].bias[unit].clone()
        model[0].weight[unit] = 0
        model[0].bias[unit] = -1.0  # its sum is now -1 for every image: it outputs 0
        out = model(x_test).argmax(dim=1)
        model[0].weight[unit], model[0].bias[unit] = saved
    return out


busiest = int(fires.argmax())
changed_dead = int((answers_without(int(dead[0])) != predicted).sum())
changed_busy = int((answers_without(busiest) != predicted).sum())
print(f"silencing dead unit {int(dead[0])}: {changed_dead} answers change; busiest unit {busiest}: {changed_busy}")
assert changed_dead == 0 and changed_busy > 0

# %% [markdown]
# That is the end of the lessons. The [lab](../how-to/lab.md) trains networks like these live in
# the browser and shows every layer as it learns, and the how-to guides show the rest of mlplab:
# [training runs](../how-to/train.md), [resuming](../how-to/resume.md), [using a trained
# model](../how-to/use.md) and more.
