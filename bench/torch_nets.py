"""The benchmark's nets in PyTorch eager (bench_backend.py's PyTorch child); each mirrors
a .pn net layer for layer."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from net_configs import MOBILENET


def card():
    layers, c = [], 3
    for f in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU()]
            c = f
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * 4 * 128, 128), nn.ReLU(),
                         nn.Linear(128, 10))


class Basic(nn.Module):
    def __init__(self, cin, c, s=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, s, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.down = None
        if s != 1 or cin != c:
            self.down = nn.Sequential(nn.Conv2d(cin, c, 1, s, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU())
        blocks, cin = [], 64
        for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [Basic(cin, c, s), Basic(c, c)]
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, c, s, t):
        super().__init__()
        e = t * cin
        self.res = s == 1 and cin == c
        self.body = nn.Sequential(
            nn.Conv2d(cin, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
            nn.Conv2d(e, e, 3, s, 1, groups=e, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
            nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return self.body(x) + x if self.res else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()], 32
        for t, c, n, s in MOBILENET:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1))


def build(name):
    return {"card": card, "resnet18": ResNet18, "mobilenet": MobileNetV2}[name]()
