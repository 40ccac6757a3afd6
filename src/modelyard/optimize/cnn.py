"""The image classifier: a small CNN in torch, trained on scikit-learn's digits (8x8,
upsampled by the shared preprocessing step to the model's size), and its ONNX graph.

The network takes the prepared pixels (``registry.imaging``: uint8 values, flattened
height x width x channels) as float32 and scales and normalises them itself, so the
ONNX graph holds the whole numeric preprocessing and the server, the edge runner and
training differ in nothing but who decodes the file. Two convolutions then two dense
layers: small enough to train in seconds, big enough (at 32x32) that int8 kernels have
work to save. ``DigitNet.narrowed`` is channel surgery for structured pruning.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from modelyard.registry.imaging import ImageSpec, from_pixels

__all__ = ["CnnConfig", "DigitNet", "digits_dataset", "export_onnx", "fit", "predict"]

MEAN = 0.5
STD = 0.5


@dataclass(frozen=True)
class CnnConfig:
    """The network's shape: input ``size`` (square, one channel), the two convolutions'
    channel counts, the hidden dense width, and training's epochs, batch and seed."""

    size: int = 32
    conv1: int = 16
    conv2: int = 32
    hidden: int = 128
    classes: int = 10
    epochs: int = 6
    batch: int = 64
    learning_rate: float = 3e-3
    seed: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec(self.size, self.size, 1, tuple(str(i) for i in range(self.classes)))


class DigitNet(nn.Module):
    """conv-relu-pool x2, dense-relu, dense-softmax over flattened uint8-valued pixels."""

    def __init__(self, config: CnnConfig, conv1: int | None = None, conv2: int | None = None):
        super().__init__()
        self.config = config
        c1 = conv1 or config.conv1
        c2 = conv2 or config.conv2
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.cells = (config.size // 4) ** 2
        self.fc1 = nn.Linear(c2 * self.cells, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.classes)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.size
        x = pixels.reshape(-1, 1, size, size)
        x = (x / 255.0 - MEAN) / STD
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        logits: torch.Tensor = self.fc2(torch.relu(self.fc1(x.flatten(1))))
        return logits

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = torch.softmax(self.logits(pixels), dim=1)
        return probabilities, probabilities.argmax(dim=1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def narrowed(self, keep1: np.ndarray, keep2: np.ndarray) -> DigitNet:
        """A copy keeping only conv1's output channels ``keep1`` and conv2's ``keep2``
        (indices), with the weights that read them cut to match: real removal, so the
        smaller network is smaller and faster, not a mask of zeros."""
        net = DigitNet(self.config, conv1=len(keep1), conv2=len(keep2))
        k1 = torch.as_tensor(keep1, dtype=torch.long)
        k2 = torch.as_tensor(keep2, dtype=torch.long)
        old = self.state_dict()
        # fc1 reads conv2's channels flattened channel-major: ``cells`` columns each
        columns = (k2[:, None] * self.cells + torch.arange(self.cells)[None, :]).reshape(-1)
        new = dict(old)
        new["conv1.weight"], new["conv1.bias"] = old["conv1.weight"][k1], old["conv1.bias"][k1]
        new["conv2.weight"] = old["conv2.weight"][k2][:, k1]
        new["conv2.bias"] = old["conv2.bias"][k2]
        new["fc1.weight"] = old["fc1.weight"][:, columns]
        net.load_state_dict({k: v.clone() for k, v in new.items()})
        return net


def digits_dataset(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as prepared pixels (float32 ``[n, size*size]``, values
    0-255) through the same ``from_pixels`` step the server uses, and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    spec = ImageSpec(size, size, 1)
    images = np.rint(digits.images * (255.0 / 16.0))  # 0-16 ink -> 0-255 grey
    pixels = np.stack([from_pixels(image, spec) for image in images]).astype(np.float32)
    return pixels, digits.target.astype(np.int64)


def fit(net: DigitNet, pixels: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> DigitNet:
    """Train ``net`` in place (Adam, cross-entropy, shuffled mini-batches); returns it."""
    config = net.config
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.from_numpy(pixels)
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch):
            index = order[start : start + config.batch]
            optimiser.zero_grad()
            loss = loss_fn(net.logits(x[index]), y[index])
            loss.backward()
            optimiser.step()
    net.eval()
    return net


def predict(net: DigitNet, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities of ``pixels`` from the torch model (eager)."""
    with torch.no_grad():
        probabilities, _ = net(torch.from_numpy(pixels))
    return np.asarray(probabilities.numpy())


def export_onnx(net: DigitNet) -> bytes:
    """The ONNX graph of ``net``: input ``input`` float32 ``[batch, size*size]``, outputs
    ``probabilities`` and ``label`` (int64), opset 17, batch axis dynamic."""
    width = net.config.size**2
    sample = torch.zeros(2, width)
    buffer = io.BytesIO()
    net.eval()
    torch.onnx.export(
        net,
        (sample,),
        buffer,  # type: ignore[arg-type]  # the exporter writes to any binary file
        input_names=["input"],
        output_names=["probabilities", "label"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}, "label": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return buffer.getvalue()


def weights_npz(net: DigitNet) -> bytes:
    """The network's weights as an ``.npz`` (no pickle), for pruning it later."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.detach().numpy() for k, v in net.state_dict().items()})
    return buffer.getvalue()


def from_npz(config: CnnConfig, data: bytes) -> DigitNet:
    """``weights_npz``'s bytes back as a network (channel counts read from the weights)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    net = DigitNet(
        config, conv1=state["conv1.weight"].shape[0], conv2=state["conv2.weight"].shape[0]
    )
    net.load_state_dict(state)
    net.eval()
    return net
