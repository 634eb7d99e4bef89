"""The benchmark's nets written by hand in Flax linen, as a Flax user would (used by
bench_backend.py's Flax children; each mirrors a .pn net layer for layer)."""

import flax.linen as nn
import jax.numpy as jnp
from net_configs import MOBILENET


def _bn(train):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


class Card(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        for f in (32, 64, 128):
            for _ in range(2):
                x = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = x.reshape((x.shape[0], -1))          # NHWC row-major, as PatternNet's FC
        x = nn.relu(nn.Dense(128)(x))
        return nn.Dense(10)(x)


class Basic(nn.Module):
    c: int
    s: int = 1

    @nn.compact
    def __call__(self, x, train=True):
        pad = ((1, 1), (1, 1))
        y = nn.Conv(self.c, (3, 3), (self.s, self.s), padding=pad, use_bias=False)(x)
        y = nn.relu(_bn(train)(y))
        y = _bn(train)(nn.Conv(self.c, (3, 3), padding=pad, use_bias=False)(y))
        if x.shape != y.shape:
            x = nn.Conv(self.c, (1, 1), (self.s, self.s), padding="VALID", use_bias=False)(x)
            x = _bn(train)(x)
        return nn.relu(y + x)


class ResNet18(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        x = nn.Conv(64, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(x)
        x = nn.relu(_bn(train)(x))
        for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            x = Basic(c, s)(x, train)
            x = Basic(c, 1)(x, train)
        return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


class InvertedResidual(nn.Module):
    cin: int
    c: int
    s: int = 1
    t: int = 6

    @nn.compact
    def __call__(self, x, train=True):
        e = self.t * self.cin
        y = nn.relu(_bn(train)(nn.Conv(e, (1, 1), use_bias=False)(x)))
        y = nn.Conv(e, (3, 3), (self.s, self.s), padding=((1, 1), (1, 1)),
                    feature_group_count=e, use_bias=False)(y)
        y = nn.relu(_bn(train)(y))
        y = _bn(train)(nn.Conv(self.c, (1, 1), use_bias=False)(y))
        return y + x if self.s == 1 and self.cin == self.c else y


class MobileNetV2(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        x = nn.relu(_bn(train)(nn.Conv(32, (3, 3), padding=((1, 1), (1, 1)),
                                       use_bias=False)(x)))
        cin = 32
        for t, c, n, s in MOBILENET:
            for i in range(n):
                x = InvertedResidual(cin, c, s if i == 0 else 1, t)(x, train)
                cin = c
        x = nn.relu(_bn(train)(nn.Conv(1280, (1, 1), use_bias=False)(x)))
        return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def build(name):
    return {"card": Card, "resnet18": ResNet18, "mobilenet": MobileNetV2}[name]()
