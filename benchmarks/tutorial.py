"""The baseline: the MNIST training loop as the PyTorch tutorials write it.

A torch Dataset hands out one sample at a time and converts it from uint8 to a float tensor
the way torchvision's ToTensor does (from_numpy, add the channel axis, .float().div(255)); a
DataLoader with batch 100 and shuffle=True collates them; the step calls loss.item() every
iteration for the running loss; evaluation is a second DataLoader under torch.no_grad().
The PIL round trip of torchvision's MNIST is left out, which only makes the baseline faster.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from benchmarks.trainer import load_mnist
from mlplab.nn.model import build_model


class ToTensorMNIST(TorchDataset):
    """MNIST as the tutorials see it: (1, 28, 28) float in [0, 1], and an int label."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.numpy(), labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.images[i][None, :, :].copy())  # ToTensor: HW -> CHW
        return img.float().div(255), self.labels[i]


def run(params: dict, emit) -> None:
    """Train preset E with SGD for `epochs`, evaluating after each epoch like the tutorials."""
    torch.manual_seed(params.get("seed", 0))
    data = load_mnist(params.get("train_size"))
    train_loader = DataLoader(
        ToTensorMNIST(data.train.x, data.train.y), batch_size=params["batch_size"], shuffle=True
    )
    test_loader = DataLoader(ToTensorMNIST(data.test.x, data.test.y), batch_size=100)
    device = torch.device(params.get("device", "cpu"))
    model = build_model(params.get("model", "e")).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
    emit({"kind": "ready"})
    for epoch in range(1, params["epochs"] + 1):
        start = time.perf_counter()
        running_loss = 0.0
        model.train()
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        seconds = time.perf_counter() - start
        correct = total = 0
        model.eval()
        with torch.no_grad():
            for images, labels in test_loader:
                images, labels = images.to(device), labels.to(device)
                correct += (model(images).argmax(1) == labels).sum().item()
                total += labels.size(0)
        emit(
            {
                "kind": "eval",
                "epoch": epoch,
                "segment_seconds": seconds,
                "train_loss": running_loss / len(train_loader),
                "test_accuracy": 100.0 * correct / total,
            }
        )
        if params.get("stop_at") and 100.0 * correct / total >= params["stop_at"]:
            break


def data_epoch_seconds(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    """One epoch of the tutorial DataLoader alone, no model: the input pipeline's cost."""
    loader = DataLoader(ToTensorMNIST(images, labels), batch_size=batch_size, shuffle=True)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start
