# %% [markdown]
# # What the network gets wrong
#
# An accuracy is one number. This lesson opens it up: the probabilities behind one answer
# (`view_classify`), where the errors fall (the confusion matrix), the errors the network was
# surest of, what the first layer has learned to look for, and how it does on a digit drawn
# the way a person draws one.
#
# We train the nn.Sequential tutorial's network, 784-128-64-10 with ReLU, for **500
# iterations of batch 256 (2.1 epochs)** with mlplab's defaults (Adam, one-cycle schedule).
# The same network trained for mlplab's default 8 epochs (`mlplab train --model
# 784-128-64-10:relu`) got 97.46% in 4.3 s of training on one thread (2-core AMD EPYC VM,
# torch 2.13.0 CPU, 2026-12-03).

# %%
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display
from PIL import Image as PILImage
from PIL import ImageDraw

import mlplab
from mlplab.training.evaluate import predict_logits
from mlplab.viz import plots

# %% [markdown]
# ## Train, into a run directory
#
# `mlplab.run` is `mlplab.train` plus a run directory: the config, the metrics as they come,
# and at the end `model.safetensors`, which holds the weights and everything needed to use
# them (the spec, the class names, the normalisation). It writes under `runs/` in the
# current folder, as `mlplab train` does.

# %%
data = mlplab.load_dataset("mnist")
config = mlplab.TrainConfig(
    model="784-128-64-10:relu",
    iterations=500,
    batch_size=256,
    eval_every=500,
    seed=0,
)
run_dir, result = mlplab.run(config, data)
print("run directory:", run_dir)
print("files:", sorted(p.name for p in run_dir.iterdir()))
print(f"test accuracy after {result.iterations} iterations: {result.test.accuracy:.2f}%")
assert result.test.accuracy > 95.0

# %% [markdown]
# Everything below uses the saved checkpoint, as a later session would: `load_checkpoint`
# rebuilds the network from the file alone, in eval mode.

# %%
ckpt = mlplab.load_checkpoint(run_dir)
model, norm, classes = ckpt.model, ckpt.norm, ckpt.classes
test = data.test
probs = torch.softmax(predict_logits(model, test.x, norm), dim=1)  # (10000, 10)
predicted = probs.argmax(dim=1)
print(ckpt.info["spec"], "normalisation", (norm.mean, norm.std), "classes", classes)
assert torch.allclose(probs.sum(dim=1), torch.ones(len(test)))

# %% [markdown]
# ## One image and its probabilities: `view_classify`
#
# The tutorials' `view_classify` draws an image beside the bar chart of its ten class
# probabilities. `mlplab.viz.plots.view_classify` writes that picture to a PNG (as `mlplab
# plot` does for every run); we show the file.

# %%
path = plots.view_classify(
    test.x[0], probs[0], classes, "view_classify.png", title=f"test image 0, label {test.y[0]}"
)
display(Image(filename=path))
print("probabilities:", [f"{p:.3f}" for p in probs[0].tolist()])
assert int(predicted[0]) == int(test.y[0]) == 7 and probs[0, 7] > 0.9

# %% [markdown]
# ## The confusion matrix
#
# Row $i$, column $j$ counts the test images of class $i$ that the network called $j$. The
# diagonal holds the right answers, so its sum over the total is the accuracy, and each row
# sums to the number of test images of that class. `mlplab.evaluate` returns it; we also count
# it ourselves, one `(true, predicted)` pair at a time.

# %%
metrics = mlplab.evaluate(model, test, norm)
confusion = torch.tensor(metrics.confusion)

by_hand = torch.zeros(10, 10, dtype=torch.long)
by_hand.index_put_((test.y, predicted), torch.ones(len(test), dtype=torch.long), accumulate=True)
assert torch.equal(confusion, by_hand)

total, right = int(confusion.sum()), int(confusion.diag().sum())
print(f"{total} images, {right} on the diagonal: {100 * right / total:.2f}%")
print(
    f"mlplab.evaluate: {metrics.accuracy:.2f}%; at the end of training: {result.test.accuracy:.2f}%"
)
assert total == len(test) == 10_000
assert abs(100 * right / total - metrics.accuracy) < 1e-9
assert abs(metrics.accuracy - result.test.accuracy) < 1e-9  # the saved model is the trained one
assert torch.equal(confusion.sum(dim=1), torch.bincount(test.y, minlength=10))

display(Image(filename=plots.confusion_heatmap(confusion.tolist(), classes, "confusion.png")))

# %% [markdown]
# The largest cells off the diagonal are the network's habits:

# %%
off = confusion.clone().fill_diagonal_(0)
top = off.flatten().argsort(descending=True)[:5]
for cell in top.tolist():
    i, j = divmod(cell, 10)
    print(f"true {i} called {j}: {int(off[i, j])} times")

# %% [markdown]
# ## The most confident mistakes
#
# Among the wrong answers, which did the network give with the highest probability? Some of
# these are the network's fault; quite a few are digits a person would hesitate over too, and
# a handful are labelled doubtfully in MNIST itself.

# %%
confidence = probs.max(dim=1).values
wrong = torch.nonzero(predicted != test.y).squeeze(1)
worst = wrong[confidence[wrong].argsort(descending=True)]
print(f"{len(wrong)} mistakes; the surest six:")
print(f"{'index':>6} {'true':>5} {'said':>5} {'probability':>12}")
for i in worst[:6].tolist():
    print(f"{i:6d} {int(test.y[i]):5d} {int(predicted[i]):5d} {float(confidence[i]):12.3f}")

assert len(wrong) == total - right
assert (predicted[worst] != test.y[worst]).all()
assert (confidence[worst][:-1] >= confidence[worst][1:]).all()
assert confidence[worst[0]] > 0.9  # some mistakes are made with near certainty

mistakes = plots.confident_mistakes(test.x, test.y, probs, classes, "mistakes.png", n=18)
display(Image(filename=mistakes))

# %% [markdown]
# ## What the first layer looks for
#
# Each of the 128 units of the first layer computes $z = w \cdot x + b$ over the 784 pixels:
# its weight row *is* a 28×28 picture, and the unit responds to images that overlap its red
# (positive) parts and avoid its blue (negative) ones. Here are the first 64, each tile
# scaled to its own largest weight.

# %%
w = model.fc1.weight.detach()  # (128, 784): one row per unit
b = model.fc1.bias.detach()
print("fc1.weight", tuple(w.shape))
display(Image(filename=plots.first_layer_weights(w, "weights.png", n=64)))

x0 = norm.apply(test.x[:1])  # (1, 784)
with torch.no_grad():
    z = model.fc1(x0)[0]
unit = 0
by_tile = float((w[unit].view(28, 28) * x0.view(28, 28)).sum() + b[unit])
print(
    f"unit {unit} on test image 0: fc1 gives {float(z[unit]):.5f}, tile . image + b = {by_tile:.5f}"
)
assert torch.allclose(z, x0 @ w.t() + b, atol=1e-5)
assert abs(by_tile - float(z[unit])) < 1e-4

# %% [markdown]
# Most tiles show strokes and blobs, pieces of digits. But some are pure noise, and they are
# not units that learned noise: they are *dead*. A ReLU unit whose $z$ is negative for every
# image outputs 0 for every image, so no gradient reaches its weights, and it never changes
# again. Early in training, while Adam's steps are large, a step can push a unit there; its
# weights stay where they were, small random numbers, which look like loud noise once the
# tile is scaled to its largest weight. (The lab, `mlplab lab`, shows the share of dead ReLUs
# live as a network trains.)
#
# We find them by running the 60,000 training images through the first layer, and check that
# a backward pass gives their weights exactly zero gradient.

# %%
with torch.no_grad():
    z_train = model.fc1(norm.apply(data.train.x))  # (60000, 128)
fires = (z_train > 0).float().mean(dim=0)  # share of training images each unit fires for
dead = torch.nonzero(fires == 0).squeeze(1)
live = torch.nonzero(fires > 0).squeeze(1)
largest = w.abs().max(dim=1).values
print(f"{len(dead)} of 128 units never fire: {dead.tolist()}")
print(
    f"largest |weight| of a unit, median: dead units {largest[dead].median():.3f}, "
    f"live units {largest[live].median():.3f}"
)

trainable = mlplab.build_model(ckpt.info["spec"])
trainable.load_state_dict(model.state_dict())
x, y = data.train.batch(torch.arange(1024), norm)
torch.nn.functional.cross_entropy(trainable(x), y).backward()
grad_rows = trainable.fc1.weight.grad.abs().sum(dim=1)
print(f"gradient on the dead units' weights: {grad_rows[dead].max():.1f}")
print(f"gradient on the live units' weights: up to {grad_rows[live].max():.2f}")

assert len(dead) > 0
assert torch.all(grad_rows[dead] == 0)
assert largest[dead].median() < 0.5 * largest[live].median()  # small weights: noisy tiles

# %% [markdown]
# ## A digit drawn by hand
#
# Test images come prepared: white on black, the digit scaled into a 20×20 box and centred
# by its centre of mass in 28×28. A drawing is black on white, of any size, anywhere on the
# canvas. `mlplab.predict` (the function behind `mlplab predict` and the drawing page of
# `mlplab serve`) prepares any image the way MNIST was made: grayscale, inverted when the
# background is light, cropped to the ink, the longer side scaled to 20 px, centred by mass.
#
# We draw a 7 with PIL as a person would with a thick pen: a stroke across the top, then one
# down and to the left, off-centre on a 280×280 canvas.

# %%
canvas = PILImage.new("L", (280, 280), color=255)  # white paper
pen = ImageDraw.Draw(canvas)
pen.line([(60, 50), (200, 45), (205, 55)], fill=0, width=22, joint="curve")
pen.line([(203, 52), (150, 150), (115, 250)], fill=0, width=22, joint="curve")
canvas.save("drawn_7.png")

(prediction,) = mlplab.predict(run_dir, [canvas], names=["drawn 7"])
seen = prediction.input  # (28, 28) in [0, 1]: what the network is given

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6, 3))
ax1.imshow(canvas, cmap="gray", vmin=0, vmax=255)
ax1.set_title("the drawing, 280×280")
ax2.imshow(seen, cmap="gray", vmin=0, vmax=1)
ax2.set_title("what the network sees, 28×28")
for ax in (ax1, ax2):
    ax.axis("off")
plt.show()

display(Image(filename=plots.view_classify(seen, prediction.probs, classes, "drawn_7_probs.png")))
print("top 3:", [(c, round(p, 4)) for c, p in prediction.top])

# %% [markdown]
# The prepared image has MNIST's layout: values in [0, 1], ink inside a 20-pixel box, its
# centre of mass at the centre. And the network reads the drawing as a 7.

# %%
ys, xs = np.indices(seen.shape)
mass = seen.sum()
centre = ((ys * seen).sum() / mass, (xs * seen).sum() / mass)
rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
print(f"ink box {height}x{width} px, centre of mass ({centre[0]:.2f}, {centre[1]:.2f})")
assert seen.shape == (28, 28) and seen.min() >= 0.0 and seen.max() <= 1.0
assert max(height, width) <= 20
assert abs(centre[0] - 14) <= 1.0 and abs(centre[1] - 14) <= 1.0
assert prediction.top[0][0] == "7", f"the drawn 7 was read as {prediction.top[0][0]}"

# %% [markdown]
# The command line gives the same answer from the saved PNG, because it runs the same
# function:
#
# ```
# mlplab predict RUN_DIR drawn_7.png --json
# ```

# %%
cli = subprocess.run(
    [sys.executable, "-m", "mlplab", "predict", str(run_dir), "drawn_7.png", "--json"],
    capture_output=True,
    text=True,
    check=True,
)
answer = json.loads(cli.stdout)["results"][0]
print("mlplab predict:", [(t["class"], round(t["probability"], 4)) for t in answer["top"]])
assert np.allclose(answer["probabilities"], prediction.probs, atol=1e-6)
assert Path("drawn_7.png").is_file()
