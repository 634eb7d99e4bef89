"""Shared by the hand-written Flax and PyTorch nets: MobileNetV2's stages as
bench/nets/mobilenet_v2_cifar.pn writes them, (t, c, n, s) = expansion, channels,
copies, stride of the first copy."""

MOBILENET = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))
