r"""FLOPs, HBM bytes and TPU tile padding of an XLA HLO module, and a roofline step time on one chip.

The input is the HLO text that `tf.function(jit_compile=True).experimental_get_compiler_ir(...)`
returns at stage "hlo": the program as the TF-to-XLA bridge emits it, before any backend pass. It is
backend-independent (the same text a TPU compile starts from) and needs no compilation, so the whole
catalogue can be costed on a CPU; the backend's own fusion and layout decisions are modelled instead.

What is counted (`hlo_cost`), over the ENTRY computation and the computations it calls (`call`,
`conditional` branches and `while` bodies once each; reduction combiners are scalar and skipped):

  FLOPs          dot: 2 * (result elements) * (product of the contracting dims), so batch dims count
                 through the result; convolution: 2 * (result elements) * (kernel elements / output
                 features). Elementwise and reduction arithmetic is not counted (as in MFU figures).
  padded FLOPs   what the v4 MXU (128 x 128 systolic array) executes: the contraction K is padded to
                 128, one free side (the weights held in the array) to 128 and the other (the rows
                 streamed through it) to the 8-row sublane tile; XLA's better orientation is taken,
                 2 * batch * pad128(K) * min(pad8(M) * pad128(N), pad128(M) * pad8(N)).
  bytes          an HBM-traffic model of XLA's fusion: every "heavy" op (dot, convolution, reduce,
                 sort, custom call, ...) is one fusion that reads its operands from HBM and writes its
                 result; elementwise ops, converts, broadcasts, reshapes, transposes, slices, pads and
                 concatenates fuse into those neighbours and move nothing themselves. An operand is
                 traced back through converts, reshapes, transposes, copies and broadcasts to the tensor
                 that really lives in HBM (a bf16 activation converted to f32 for a norm is read as
                 bf16; a broadcast vector is read once). gather / dynamic-slice move their result
                 twice (read rows, write them); scatter / dynamic-update-slice read the indices and the
                 updates and read-modify-write the touched rows. Entry parameters (weights, optimizer
                 slots, carry, batch) are read once and the outputs (updated variables) written once.
                 Intermediate elementwise results with several heavy consumers are read by each but
                 never written; weights read by a dot are counted twice (as parameter and operand).
                 Both errors are small next to the activations at training batch sizes.
  padded bytes   the same tensors in TPU HBM layout: the two minor dims (by the printed layout) are
                 tiled to (8, 128) for 4-byte types, (16, 128) for 2-byte and (32, 128) for 1-byte;
                 a vector pads to 128 elements.

`roofline` turns these into a step time on one chip: max(padded FLOPs / peak, padded bytes / HBM
bandwidth) + the gradient all-reduce over the slice's interconnect (not overlapped with compute).
"""

from __future__ import annotations

import dataclasses
import math
import re

# Cloud TPU v4, per chip: bf16 peak, HBM2 bandwidth, and the pod's all-reduce bandwidth (1.1 PB/s over
# 4096 chips) as the per-chip bandwidth of a gradient all-reduce.
V4_PEAK_FLOPS = 275e12
V4_HBM_BW = 1.2e12
V4_ALLREDUCE_BW = 1.1e15 / 4096
MXU = 128
SUBLANE = 8
LANE = 128

_DTYPE_BYTES = {
    "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
    "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
}  # fmt: skip
# Ops that move no HBM bytes of their own: they fuse into the heavy op that consumes them.
_FREE = frozenset(
    "convert bitcast bitcast-convert reshape copy transpose broadcast".split()
)  # traced through to the HBM-resident source
_HEAVY = frozenset(
    "dot convolution reduce reduce-window sort select-and-scatter custom-call fft cholesky "
    "triangular-solve all-reduce all-gather reduce-scatter all-to-all rng-bit-generator".split()
)
_CALLED = re.compile(
    r"(?:calls|body|condition|true_computation|false_computation)=%?([\w.\-]+)"
    r"|branch_computations=\{([^}]*)\}"
)
_SHAPE = re.compile(r"([a-z]+[0-9]*)\[([0-9,]*)\](?:\{([0-9,]*)[^}]*\})?")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")


@dataclasses.dataclass(frozen=True)
class Tensor:
    dtype: str
    dims: tuple[int, ...]
    layout: tuple[int, ...]  # minor-to-major, as printed ({1,0} = row-major for rank 2)

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        return self.elements * _DTYPE_BYTES.get(self.dtype, 4)

    @property
    def padded_bytes(self) -> int:
        """Bytes in TPU HBM tiling: minor dim to 128, second-minor to the dtype's sublane tile."""
        size = _DTYPE_BYTES.get(self.dtype, 4)
        if not self.dims:
            return size
        dims = list(self.dims)
        layout = self.layout or tuple(reversed(range(len(dims))))
        dims[layout[0]] = _pad(dims[layout[0]], LANE)
        if len(dims) > 1:
            dims[layout[1]] = _pad(dims[layout[1]], SUBLANE * max(1, 4 // size))
        return math.prod(dims) * size


@dataclasses.dataclass
class Instr:
    name: str
    opcode: str
    shapes: list[Tensor]  # one entry, or the elements of a tuple
    operands: list[str]
    attrs: str


@dataclasses.dataclass
class HloCost:
    """Totals of one HLO module (see the module docstring for what each counts)."""

    flops: int = 0
    flops_padded: int = 0
    bytes: int = 0
    bytes_padded: int = 0
    dots: int = 0
    loops: int = 0  # while ops: their bodies are counted once, not per trip

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _pad(n: int, tile: int) -> int:
    return -(-n // tile) * tile


def _balanced(s: str, start: int) -> int:
    """Index just past the bracket group opening at s[start]."""
    depth = 0
    for i in range(start, len(s)):
        depth += {"(": 1, "{": 1, "[": 1, ")": -1, "}": -1, "]": -1}.get(s[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError(f"unbalanced HLO text: {s[start : start + 80]!r}")


def _tensors(shape: str) -> list[Tensor]:
    out = []
    for dtype, dims, layout in _SHAPE.findall(shape):
        d = tuple(int(x) for x in dims.split(",") if x)
        lay = tuple(int(x) for x in layout.split(",") if x) if layout else ()
        out.append(Tensor(dtype, d, lay))
    return out


def _parse_instr(line: str) -> Instr | None:
    m = re.match(r"\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*", line)
    if not m:
        return None
    rest = line[m.end() :]
    end = _balanced(rest, 0) if rest.startswith("(") else rest.index(" ")
    shape, rest = rest[:end], rest[end:].lstrip()
    op = re.match(r"([a-z][\w\-]*)\(", rest)
    if not op:
        return None
    close = _balanced(rest, op.end() - 1)
    operands = re.findall(r"%([\w.\-]+)", rest[op.end() : close - 1])
    return Instr(m.group(1), op.group(1), _tensors(shape), operands, rest[close:])


def parse_hlo(text: str) -> tuple[str, dict[str, list[Instr]]]:
    """(entry computation name, {computation name: its instructions}) of an HLO text module."""
    comps: dict[str, list[Instr]] = {}
    entry, current = None, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and " = " not in line.split("(")[0]:
            current = header.group(2)
            comps[current] = []
            if header.group(1):
                entry = current
            continue
        if current is not None and (ins := _parse_instr(line)) is not None:
            comps[current].append(ins)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return entry, comps


def _reachable(entry: str, comps: dict[str, list[Instr]]) -> list[str]:
    """The entry and every computation it runs as control flow (not reduction combiners)."""
    seen, todo = [], [entry]
    while todo:
        c = todo.pop()
        if c in seen or c not in comps:
            continue
        seen.append(c)
        for ins in comps[c]:
            for single, group in _CALLED.findall(ins.attrs):
                todo.extend([single] if single else re.findall(r"%?([\w.\-]+)", group))
    return seen


def _dims(attrs: str, key: str) -> list[int]:
    m = re.search(key + r"=\{([0-9,]*)\}", attrs)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def dot_flops(lhs: Tensor, rhs: Tensor, attrs: str) -> tuple[int, int]:
    """(FLOPs, MXU-padded FLOPs) of one dot (see the module docstring for the padding rule)."""
    lb, lc = _dims(attrs, "lhs_batch_dims"), _dims(attrs, "lhs_contracting_dims")
    rb, rc = _dims(attrs, "rhs_batch_dims"), _dims(attrs, "rhs_contracting_dims")
    batch = math.prod(lhs.dims[i] for i in lb)
    k = math.prod(lhs.dims[i] for i in lc)
    m = math.prod(d for i, d in enumerate(lhs.dims) if i not in lb and i not in lc)
    n = math.prod(d for i, d in enumerate(rhs.dims) if i not in rb and i not in rc)
    flops = 2 * batch * m * n * k
    tiles = min(_pad(m, SUBLANE) * _pad(n, MXU), _pad(m, MXU) * _pad(n, SUBLANE))
    return flops, 2 * batch * _pad(k, MXU) * tiles


def _conv_flops(out: Tensor, kernel: Tensor, attrs: str) -> int:
    labels = re.search(r"dim_labels=[^_]*_([^-]*)->", attrs)
    o = labels.group(1).index("o") if labels else len(kernel.dims) - 1
    return 2 * out.elements * (kernel.elements // max(kernel.dims[o], 1))


def hlo_cost(text: str) -> HloCost:
    """Counts FLOPs, padded FLOPs, HBM bytes and padded bytes of an HLO text module."""
    entry, comps = parse_hlo(text)
    names = _reachable(entry, comps)
    by_name = {i.name: i for c in names for i in comps[c]}
    cost = HloCost()

    def source(name: str) -> list[Tensor]:
        ins = by_name.get(name)
        while ins is not None and ins.opcode in _FREE and ins.operands:
            ins = by_name.get(ins.operands[0])
        return ins.shapes if ins is not None else []

    def move(tensors, times: int = 1) -> None:
        cost.bytes += times * sum(t.nbytes for t in tensors)
        cost.bytes_padded += times * sum(t.padded_bytes for t in tensors)

    for comp in names:
        for ins in comps[comp]:
            op = ins.opcode
            if op == "parameter" and comp == entry:
                move(ins.shapes)
            elif op == "dot":
                f, fp = dot_flops(
                    by_name[ins.operands[0]].shapes[0],
                    by_name[ins.operands[1]].shapes[0],
                    ins.attrs,
                )
                cost.flops, cost.flops_padded, cost.dots = (
                    cost.flops + f,
                    cost.flops_padded + fp,
                    cost.dots + 1,
                )
            elif op == "convolution":
                f = _conv_flops(ins.shapes[0], by_name[ins.operands[1]].shapes[0], ins.attrs)
                cost.flops, cost.flops_padded = cost.flops + f, cost.flops_padded + f
            elif op == "while":
                cost.loops += 1
            if op in _HEAVY:
                for o in ins.operands:
                    move(source(o))
                move(ins.shapes)
            elif op in ("gather", "dynamic-slice"):
                move(ins.shapes, 2)
            elif op == "scatter":  # indices and updates read, the touched rows read and written
                for o in ins.operands[1:]:
                    move(source(o))
                move(source(ins.operands[-1]), 2)
            elif op == "dynamic-update-slice":  # the update read, its region written
                move(source(ins.operands[1]), 2)
        if comp == entry:
            root = comps[comp][-1] if comps[comp] else None
            if root is not None:
                move(root.shapes)
    return cost


def allreduce_seconds(grad_bytes: float, chips: int, bandwidth: float = V4_ALLREDUCE_BW) -> float:
    """A ring all-reduce of `grad_bytes` over `chips`: each chip sends and receives 2 (n-1)/n of it."""
    if chips <= 1:
        return 0.0
    return 2 * (chips - 1) / chips * grad_bytes / bandwidth


def roofline(
    cost: HloCost,
    comm_seconds: float = 0.0,
    peak: float = V4_PEAK_FLOPS,
    hbm_bw: float = V4_HBM_BW,
) -> dict:
    """Step time on one chip and its parts: compute (padded FLOPs at peak), memory (padded bytes at
    HBM bandwidth), the larger of the two plus the all-reduce; MFU = HLO FLOPs / (time * peak)."""
    t_compute = cost.flops_padded / peak
    t_memory = cost.bytes_padded / hbm_bw
    step = max(t_compute, t_memory) + comm_seconds
    return {
        "compute_s": t_compute,
        "memory_s": t_memory,
        "comm_s": comm_seconds,
        "step_s": step,
        "bound": "compute" if t_compute >= t_memory else "memory",
        "intensity": cost.flops_padded / max(cost.bytes_padded, 1),
        "mfu": cost.flops / (step * peak) if step > 0 else 0.0,
    }
