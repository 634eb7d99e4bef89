"""A slow, obvious NumPy reference for every PatternNet layer.

Written straight from the formulas of docs/language.md §9-§10 (PyTorch conventions for
integer padding and ``ceil``, XLA SAME for ``same``), with explicit Python loops over the
output positions and the kernel taps.  It never imports jax and uses no vectorised
tricks (no im2col, no strided views, no ``np.pad``) that could share a bug with the
backend: every output value is accumulated from the input values it reads.

Everything computes in float64.  Images are NHWC ``(N, H, W, C)``, vectors ``(N, D)``.
Padding is always given per side: ``((top, bottom), (left, right))``.

Public functions:

* sizes: ``same_padding``, ``out_size``, ``conv_padding``
* layers: ``conv2d``, ``maxpool`` (and ``maxpool_grad``), ``avgpool``, ``gap``, ``flatten``, ``fc``,
  ``batchnorm_train``, ``batchnorm_eval``, ``lrn``, ``relu``, ``tanh``, ``sigmoid``,
  ``gelu``, ``softmax``, ``lrelu``, ``elu``, ``skip_projection``, ``concat``, ``add``
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "same_padding", "out_size", "conv_padding", "pair",
    "conv2d", "maxpool", "maxpool_grad", "avgpool", "gap", "flatten", "fc",
    "batchnorm_train", "batchnorm_eval", "lrn",
    "relu", "tanh", "sigmoid", "gelu", "softmax", "lrelu", "elu", "relu6", "hardsigmoid",
    "hardswish", "silu", "layernorm", "groupnorm", "channel_scale", "droppath", "split",
    "shuffle", "upsample", "conv_transpose2d",
    "skip_projection", "concat", "add", "gate", "identity", "dropout", "REFERENCES",
    "MERGE_REFERENCES",
]


# --------------------------------------------------------------------------- sizes

def pair(v):
    """``3`` -> ``(3, 3)``; a pair stays a pair."""
    if isinstance(v, (tuple, list)):
        a, b = v
        return int(a), int(b)
    return int(v), int(v)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """XLA/TensorFlow SAME along one axis: output ceil(size/stride), and the (lo, hi)
    padding: total = max((out - 1)*S + D*(F - 1) + 1 - W, 0), lo = total // 2."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def out_size(size: int, kernel: int, stride: int, lo: int, hi: int, dilation: int = 1,
             ceil: bool = False) -> int:
    """Output length along one axis with ``lo``/``hi`` padding.

    Floor mode: (W + lo + hi - D(F-1) - 1) // S + 1.  Ceil mode (PyTorch's
    ``ceil_mode``): round the division up, then drop the last window when it would start
    at or beyond W + lo (beyond the input and its leading padding)."""
    span = size + lo + hi - (dilation * (kernel - 1) + 1)
    if ceil:
        out = math.ceil(span / stride) + 1
        if (out - 1) * stride >= size + lo:
            out -= 1
        return out
    return span // stride + 1


def conv_padding(pad, size_hw, kernel, stride, dilation=1):
    """Per-side padding ``((top, bottom), (left, right))`` for a layer's ``pad`` argument:
    ``"same"``, ``"valid"``, an integer or an ``(ph, pw)`` pair (symmetric per axis)."""
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    if pad == "same":
        return (same_padding(size_hw[0], kh, sh, dh), same_padding(size_hw[1], kw, sw, dw))
    if pad == "valid":
        return ((0, 0), (0, 0))
    ph, pw = pair(pad)
    return ((ph, ph), (pw, pw))


# --------------------------------------------------------------------------- layers

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def conv2d(x, w, b=None, stride=1, padding=((0, 0), (0, 0)), dilation=1, groups=1):
    """Cross-correlation (no kernel flip), NHWC input, HWIO weights ``(kh, kw, C/groups, K)``.

    out[n, i, j, k] = b[k] + sum over taps (u, v) and the input channels c of k's group of
      x[n, i*sh - top + u*dh, j*sw - left + v*dw, c] * w[u, v, c - g*C/groups, k]
    where a position outside the input reads zero."""
    x = _f64(x)
    w = _f64(w)
    n_, h, wd, c = x.shape
    kh, kw, cg, k = w.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = padding
    assert c == cg * groups, (c, cg, groups)
    assert k % groups == 0
    kg = k // groups
    oh = out_size(h, kh, sh, pt, pb, dh)
    ow = out_size(wd, kw, sw, pl, pr, dw)
    out = np.zeros((n_, oh, ow, k))
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for o in range(k):
                    g = o // kg
                    acc = 0.0 if b is None else float(b[o])
                    for u in range(kh):
                        r = i * sh - pt + u * dh
                        if r < 0 or r >= h:
                            continue
                        for v in range(kw):
                            q = j * sw - pl + v * dw
                            if q < 0 or q >= wd:
                                continue
                            for ci in range(cg):
                                acc += x[n, r, q, g * cg + ci] * w[u, v, ci, o]
                    out[n, i, j, o] = acc
    return out



def _conv_taps(x_shape, w_shape, stride, padding, dilation):
    """Each (output row i, col j, tap u, v, input row r, col q) of a convolution whose
    tap reads inside the input: the pairs both gradients sum over."""
    _, h, wd, _ = x_shape
    kh, kw = w_shape[:2]
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = padding
    for i in range(out_size(h, kh, sh, pt, pb, dh)):
        for j in range(out_size(wd, kw, sw, pl, pr, dw)):
            for u in range(kh):
                for v in range(kw):
                    r, q = i * sh - pt + u * dh, j * sw - pl + v * dw
                    if 0 <= r < h and 0 <= q < wd:
                        yield i, j, u, v, r, q


def conv2d_grads(x, w, g, stride=1, padding=((0, 0), (0, 0)), dilation=1, groups=1):
    """(dL/dx, dL/dw) of ``conv2d(x, w, ...)`` for the output gradient ``g``, from the
    definition: out[n, i, j, o] takes x[n, r, q, c] * w[u, v, c', o] at each tap, so
    dx[n, r, q, c] gets g[n, i, j, o] * w[u, v, c', o] and dw[u, v, c', o] gets
    x[n, r, q, c] * g[n, i, j, o], for the channels c of o's group."""
    x, w, g = _f64(x), _f64(w), _f64(g)
    cg, kg = w.shape[2], w.shape[3] // groups
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i, j, u, v, r, q in _conv_taps(x.shape, w.shape, stride, padding, dilation):
        for grp in range(groups):
            cs, ks = slice(grp * cg, (grp + 1) * cg), slice(grp * kg, (grp + 1) * kg)
            dx[:, r, q, cs] += g[:, i, j, ks] @ w[u, v, :, ks].T
            dw[u, v, :, ks] += x[:, r, q, cs].T @ g[:, i, j, ks]
    return dx, dw

def _pool_windows(size, kernel, stride, lo, hi, ceil):
    """For each output position along one axis: (start, end) of the window clipped to the
    input, and the PyTorch divisor length: the window clipped to the padded input
    [-lo, size + hi)."""
    out = out_size(size, kernel, stride, lo, hi, 1, ceil)
    wins = []
    for i in range(out):
        start = i * stride - lo
        end = start + kernel
        div_end = min(end, size + hi)      # PyTorch: hend = min(hstart + k, H + pad)
        wins.append((max(start, 0), min(end, size), div_end - start))
    return wins


def _pool_grid(x, window, stride, padding, ceil):
    """The windows of a pool over x's H and W: (rows, cols), each a list of
    (start, end, divisor) from ``_pool_windows``."""
    kh, kw = pair(window)
    sh, sw = pair(window if stride is None else stride)
    (pt, pb), (pl, pr) = padding
    _, h, wd, _ = x.shape
    return _pool_windows(h, kh, sh, pt, pb, ceil), _pool_windows(wd, kw, sw, pl, pr, ceil)


def _max_windows(x, rows, cols):
    """Each max-pool window's first maximum over the real input (padded positions, and
    positions past the padded input that a ceil-mode window covers, never win), in
    row-major order: yields (n, i, j, ch, best value, (row, col) of it)."""
    n_, _, _, c = x.shape
    for n in range(n_):
        for i, (r0, r1, _) in enumerate(rows):
            for j, (q0, q1, _) in enumerate(cols):
                for ch in range(c):
                    best, at = -math.inf, None
                    for r in range(r0, r1):
                        for q in range(q0, q1):
                            if x[n, r, q, ch] > best:
                                best, at = x[n, r, q, ch], (r, q)
                    yield n, i, j, ch, best, at


def maxpool(x, window=2, stride=None, padding=((0, 0), (0, 0)), ceil=False):
    """Max over each window; padded positions never win: the max runs over the real
    input only."""
    x = _f64(x)
    rows, cols = _pool_grid(x, window, stride, padding, ceil)
    out = np.zeros((x.shape[0], len(rows), len(cols), x.shape[3]))
    for n, i, j, ch, best, _ in _max_windows(x, rows, cols):
        out[n, i, j, ch] = best
    return out


def maxpool_grad(x, g, window=2, stride=None, padding=((0, 0), (0, 0)), ceil=False):
    """The gradient of ``sum(maxpool(x) * g)`` by x: each window's g goes to its first
    maximum in row-major order (PyTorch's and XLA select-and-scatter's rule); windows that
    overlap add their shares."""
    x, g = _f64(x), _f64(g)
    dx = np.zeros_like(x)
    for n, i, j, ch, _, (r, q) in _max_windows(x, *_pool_grid(x, window, stride, padding,
                                                               ceil)):
        dx[n, r, q, ch] += g[n, i, j, ch]
    return dx


def avgpool(x, window=2, stride=None, padding=((0, 0), (0, 0)), ceil=False):
    """Average with PyTorch's ``count_include_pad=True``: the sum of the real input values
    in the window divided by the window's size clipped to the padded input (the full
    window, except for a last partial window kept by ``ceil``)."""
    x = _f64(x)
    n_, _, _, c = x.shape
    rows, cols = _pool_grid(x, window, stride, padding, ceil)
    out = np.zeros((n_, len(rows), len(cols), c))
    for n in range(n_):
        for i, (r0, r1, dr) in enumerate(rows):
            for j, (q0, q1, dq) in enumerate(cols):
                for ch in range(c):
                    s = 0.0
                    for r in range(r0, r1):
                        for q in range(q0, q1):
                            s += x[n, r, q, ch]
                    out[n, i, j, ch] = s / (dr * dq)
    return out


def gap(x):
    """Mean over H and W: (N, H, W, C) -> (N, C)."""
    x = _f64(x)
    n_, h, wd, c = x.shape
    out = np.zeros((n_, c))
    for n in range(n_):
        for ch in range(c):
            s = 0.0
            for r in range(h):
                for q in range(wd):
                    s += x[n, r, q, ch]
            out[n, ch] = s / (h * wd)
    return out


def flatten(x):
    """(N, H, W, C) -> (N, H*W*C), element (h, w, c) at h*W*C + w*C + c; vectors unchanged."""
    x = _f64(x)
    if x.ndim == 2:
        return x.copy()
    n_, h, wd, c = x.shape
    out = np.zeros((n_, h * wd * c))
    for n in range(n_):
        for r in range(h):
            for q in range(wd):
                for ch in range(c):
                    out[n, r * wd * c + q * c + ch] = x[n, r, q, ch]
    return out


def fc(x, w, b=None):
    """y[n, u] = b[u] + sum_d x[n, d] * w[d, u]; an image is flattened first."""
    x = flatten(x) if np.ndim(x) == 4 else _f64(x)
    w = _f64(w)
    n_, d = x.shape
    d2, units = w.shape
    assert d == d2, (d, d2)
    out = np.zeros((n_, units))
    for n in range(n_):
        for u in range(units):
            acc = 0.0 if b is None else float(b[u])
            for i in range(d):
                acc += x[n, i] * w[i, u]
            out[n, u] = acc
    return out


def _channel_values(x, ch):
    """Every value of channel ``ch`` over the batch and the spatial positions."""
    if x.ndim == 2:
        return [x[n, ch] for n in range(x.shape[0])]
    return [x[n, r, q, ch] for n in range(x.shape[0]) for r in range(x.shape[1])
            for q in range(x.shape[2])]


def _bn_apply(x, mean, var, scale, bias, eps):
    out = np.zeros_like(x)
    c = x.shape[-1]
    for ch in range(c):
        inv = 1.0 / math.sqrt(var[ch] + eps)
        out[..., ch] = (x[..., ch] - mean[ch]) * inv * scale[ch] + bias[ch]
    return out


def batchnorm_train(x, scale, bias, running_mean, running_var, eps=1e-5, momentum=0.1):
    """Training-mode BN.  Normalises with the batch mean and the biased batch variance
    per channel (over N, H, W); returns ``(y, new_mean, new_var)`` with
    running <- (1 - m)*running + m*batch, the running variance taking the *unbiased*
    batch variance (as PyTorch)."""
    x = _f64(x)
    c = x.shape[-1]
    mean = np.zeros(c)
    var = np.zeros(c)
    unbiased = np.zeros(c)
    for ch in range(c):
        vals = _channel_values(x, ch)
        m = len(vals)
        mu = sum(vals) / m
        ss = sum((v - mu) ** 2 for v in vals)
        mean[ch] = mu
        var[ch] = ss / m
        unbiased[ch] = ss / (m - 1)
    y = _bn_apply(x, mean, var, _f64(scale), _f64(bias), eps)
    new_mean = (1 - momentum) * _f64(running_mean) + momentum * mean
    new_var = (1 - momentum) * _f64(running_var) + momentum * unbiased
    return y, new_mean, new_var


def batchnorm_eval(x, scale, bias, running_mean, running_var, eps=1e-5):
    """Inference-mode BN: (x - running_mean)/sqrt(running_var + eps)*scale + bias."""
    return _bn_apply(_f64(x), _f64(running_mean), _f64(running_var), _f64(scale), _f64(bias),
                     eps)


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """PyTorch LocalResponseNorm / Caffe across channels:
    b_c = a_c / (k + alpha/size * sum_{c' = c - size//2}^{c + (size-1)//2} a_c'^2)^beta,
    channels outside [0, C) contributing zero."""
    x = _f64(x)
    c = x.shape[-1]
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        for ch in range(c):
            s = 0.0
            for cc in range(ch - size // 2, ch + (size - 1) // 2 + 1):
                if 0 <= cc < c:
                    s += x[idx + (cc,)] ** 2
            out[idx + (ch,)] = x[idx + (ch,)] / (k + alpha / size * s) ** beta
    return out


def _elementwise(x, f):
    x = _f64(x)
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        out[idx] = f(float(x[idx]))
    return out


def relu(x):
    return _elementwise(x, lambda v: v if v > 0 else 0.0)


def tanh(x):
    return _elementwise(x, math.tanh)


def sigmoid(x):
    return _elementwise(x, lambda v: 1.0 / (1.0 + math.exp(-v)))


def gelu(x, tanh=False):
    """Exact GELU: x * Phi(x) = x/2 * (1 + erf(x/sqrt 2)); with ``tanh``, PyTorch's
    approximation x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""
    if tanh:
        c = math.sqrt(2.0 / math.pi)
        return _elementwise(x, lambda v: 0.5 * v * (1.0 + math.tanh(c * (v + 0.044715 * v**3))))
    return _elementwise(x, lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))


def lrelu(x, slope=0.01):
    return _elementwise(x, lambda v: v if v > 0 else slope * v)


def elu(x, alpha=1.0):
    return _elementwise(x, lambda v: v if v > 0 else alpha * (math.exp(v) - 1.0))


def relu6(x):
    return _elementwise(x, lambda v: min(max(v, 0.0), 6.0))


def hardsigmoid(x):
    """PyTorch's Hardsigmoid: 0 below -3, 1 above 3, x/6 + 1/2 between."""
    return _elementwise(x, lambda v: 0.0 if v <= -3 else 1.0 if v >= 3 else v / 6.0 + 0.5)


def hardswish(x):
    """PyTorch's Hardswish: x * hardsigmoid(x)."""
    return _elementwise(x, lambda v: 0.0 if v <= -3 else v if v >= 3 else v * (v + 3) / 6.0)


def silu(x):
    """x * sigmoid(x), computed as x / (1 + e^-x)."""
    return _elementwise(x, lambda v: v / (1.0 + math.exp(-v)))


def softmax(x):
    """Softmax over the last axis."""
    x = _f64(x)
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        row = [float(v) for v in x[idx]]
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        for ch, ev in enumerate(e):
            out[idx + (ch,)] = ev / s
    return out


def layernorm(x, scale, bias, eps=1e-5):
    """LayerNorm over the last axis (channels) at each position: mean and biased
    variance of the C values, then the per-channel scale and bias."""
    x = _f64(x)
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        v = x[idx]
        m = sum(v) / len(v)
        var = sum((vi - m) ** 2 for vi in v) / len(v)
        out[idx] = [(vi - m) / math.sqrt(var + eps) * float(g) + float(b)
                    for vi, g, b in zip(v, scale, bias)]
    return out


def groupnorm(x, scale, bias, groups, eps=1e-5):
    """GroupNorm: per sample, channels cut into ``groups`` runs of C/groups; each run
    normalised over its channels and every position."""
    x = _f64(x)
    out = np.empty_like(x)
    c = x.shape[-1]
    per = c // groups
    for n in range(x.shape[0]):
        for g in range(groups):
            chans = range(g * per, (g + 1) * per)
            vals = [x[(n,) + pos + (ch,)] for pos in np.ndindex(*x.shape[1:-1]) for ch in chans]
            m = sum(vals) / len(vals)
            var = sum((v - m) ** 2 for v in vals) / len(vals)
            for pos in np.ndindex(*x.shape[1:-1]):
                for ch in chans:
                    i = (n,) + pos + (ch,)
                    out[i] = (x[i] - m) / math.sqrt(var + eps) * float(scale[ch]) + float(bias[ch])
    return out


def channel_scale(x, gamma):
    """SCALE: channel c times gamma[c]."""
    x = _f64(x)
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        out[idx] = x[idx] * float(gamma[idx[-1]])
    return out


def droppath(x, keep, rate):
    """Stochastic depth with a given per-sample keep vector: sample n is kept whole and
    scaled by 1/(1 - rate), or zeroed."""
    x = _f64(x)
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        if keep[n]:
            out[n] = x[n] / (1.0 - rate)
    return out


def split(x, parts, index):
    """SPLIT: channels index*C/parts .. (index+1)*C/parts - 1."""
    x = _f64(x)
    per = x.shape[-1] // parts
    return np.stack([x[..., index * per + j] for j in range(per)], axis=-1)


def shuffle(x, groups):
    """Channel shuffle (torchvision's channel_shuffle, channels last): the output's
    channel j*groups + g is the input's channel g*(C/groups) + j."""
    x = _f64(x)
    c = x.shape[-1]
    per = c // groups
    out = np.empty_like(x)
    for g in range(groups):
        for j in range(per):
            out[..., j * groups + g] = x[..., g * per + j]
    return out


def _source_index(i, n_in, n_out, bilinear, corners):
    """Where output index ``i`` samples the input, as PyTorch's interpolate computes it."""
    if not bilinear:
        return min(math.floor(i * n_in / n_out), n_in - 1)
    if corners:
        return i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max((i + 0.5) * n_in / n_out - 0.5, 0.0)


def upsample(x, out_hw, bilinear=False, corners=False):
    """nn.Upsample to ``out_hw``: nearest, or bilinear from the four pixels around each
    output's source point (clamped at the far edge)."""
    x = _f64(x)
    n, h, w, c = x.shape
    oh, ow = out_hw
    out = np.empty((n, oh, ow, c))
    for i in range(oh):
        si = _source_index(i, h, oh, bilinear, corners)
        for j in range(ow):
            sj = _source_index(j, w, ow, bilinear, corners)
            if not bilinear:
                out[:, i, j, :] = x[:, si, sj, :]
                continue
            i0, j0 = min(math.floor(si), h - 1), min(math.floor(sj), w - 1)
            i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
            ti, tj = si - i0, sj - j0
            out[:, i, j, :] = ((1 - ti) * (1 - tj) * x[:, i0, j0, :] + (1 - ti) * tj * x[:, i0, j1, :]
                               + ti * (1 - tj) * x[:, i1, j0, :] + ti * tj * x[:, i1, j1, :])
    return out


def conv_transpose2d(x, w, b=None, stride=1, padding=(0, 0), output_padding=(0, 0),
                     dilation=1, groups=1):
    """ConvTranspose2d by its definition: every input pixel scatters its kernel.
    ``x`` is (N, H, W, Cin); ``w`` is (kh, kw, Cin, Cout/groups), PyTorch's
    (Cin, Cout/groups, kh, kw) with the taps first.  Output position
    o = i*stride - pad + k*dilation, kept where 0 <= o < out size."""
    x, w = _f64(x), _f64(w)
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    (ph, pw), (oph, opw) = pair(padding), pair(output_padding)
    n, h, wd, cin = x.shape
    kh, kw, _, per = w.shape
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    out = np.zeros((n, oh, ow, per * groups))
    cin_g = cin // groups
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for bb in range(kw):
                    oi, oj = i * sh - ph + a * dh, j * sw - pw + bb * dw
                    if not (0 <= oi < oh and 0 <= oj < ow):
                        continue
                    for ci in range(cin):
                        g = ci // cin_g
                        out[:, oi, oj, g * per:(g + 1) * per] += (
                            x[:, i, j, ci][:, None] * w[a, bb, ci, :][None, :])
    if b is not None:
        out = out + _f64(b)
    return out


def skip_projection(x, w, scale, bias, running_mean, running_var, stride, train=False,
                    eps=1e-5, momentum=0.1):
    """torchvision's ResNet downsample: 1x1 CONV(bias=false, stride, no padding) -> BN.
    ``w`` is ``(1, 1, C, K)``.  Returns ``y`` in eval mode and ``(y, new_mean, new_var)``
    in training mode."""
    z = conv2d(x, w, None, stride=stride, padding=((0, 0), (0, 0)))
    if train:
        return batchnorm_train(z, scale, bias, running_mean, running_var, eps, momentum)
    return batchnorm_eval(z, scale, bias, running_mean, running_var, eps)


def concat(*xs):
    """``|``: concatenate on channels (the last axis), branches left to right."""
    xs = [_f64(a) for a in xs]
    lead = xs[0].shape[:-1]
    total = sum(a.shape[-1] for a in xs)
    out = np.zeros(lead + (total,))
    at = 0
    for a in xs:
        assert a.shape[:-1] == lead
        for ch in range(a.shape[-1]):
            out[..., at + ch] = a[..., ch]
        at += a.shape[-1]
    return out


def add(*xs):
    """``+``: element-wise sum of the branches."""
    out = np.zeros_like(_f64(xs[0]))
    for a in xs:
        out = out + _f64(a)
    return out


def gate(*xs):
    """``*``: the largest branch multiplied element by element by the others; a batch of
    vectors ``(N, C)`` beside images ``(N, H, W, C)`` scales channel ``c`` of every
    position by entry ``c``, a dimension of 1 repeats along that axis.  Written as loops
    over the output's elements, not by NumPy broadcasting."""
    xs = [_f64(a) for a in xs]
    big = max(xs, key=lambda a: (a.ndim, a.size))
    out = np.empty_like(big)
    for idx in np.ndindex(*big.shape):
        v = 1.0
        for a in xs:
            if a.ndim < big.ndim:  # (N, C) beside (N, H, W, C)
                v *= a[idx[0], idx[-1]]
            else:
                v *= a[tuple(i if d > 1 else 0 for i, d in zip(idx, a.shape))]
        out[idx] = v
    return out


def identity(x):
    """INPUT and ID."""
    return _f64(x)


def dropout(x, keep, rate):
    """Inverted dropout with a given keep mask: kept values scaled by 1/(1 - rate)."""
    return np.where(keep, _f64(x) / (1.0 - rate), 0.0)


#: layer kind -> the name of its reference here (tests/test_kinds.py checks every kind
#: has one, and that tests/test_backend_reference.py compares the backend with it)
REFERENCES = {
    "INPUT": "identity", "CONV": "conv2d", "POOL": "maxpool", "AVGPOOL": "avgpool",
    "GAP": "gap", "FLATTEN": "flatten", "FC": "fc", "RELU": "relu", "TANH": "tanh",
    "SIGMOID": "sigmoid", "GELU": "gelu", "SOFTMAX": "softmax", "LRELU": "lrelu",
    "ELU": "elu", "RELU6": "relu6", "HARDSIGMOID": "hardsigmoid", "HARDSWISH": "hardswish",
    "SILU": "silu", "BN": "batchnorm_train", "LRN": "lrn", "DROPOUT": "dropout",
    "ID": "identity", "SKIP": "skip_projection", "LAYERNORM": "layernorm",
    "GROUPNORM": "groupnorm", "SCALE": "channel_scale", "DROPPATH": "droppath",
    "SPLIT": "split", "SHUFFLE": "shuffle", "UPSAMPLE": "upsample", "CONVT": "conv_transpose2d",
}

#: merge operator -> the name of its reference here (tests/test_merges.py)
MERGE_REFERENCES = {"+": "add", "|": "concat", "*": "gate"}
