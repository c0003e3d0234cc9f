"""sklearn's GradientBoostingClassifier, fitted the same way, faster.

DCI (`dci.py`) fits one gradient-boosted classifier per factor: 100 stages of
one depth-3 regression tree per class (40 classes for dSprites' x position).
sklearn sorts every node's samples by every feature, in C; on
disentanglement_lib's sizes that made DCI the slowest metric. This module
is the same estimator for DCI's parameters (`dci.GBT_PARAMS`: log_loss,
learning rate 0.1, depth 3, no subsampling, all features, random_state 0),
in numpy, several times faster in one process (benchmarks in `dci.py`'s
docstring).

What it reproduces, from sklearn 1.9.1's sources (paths under sklearn/):
* ensemble/_gb.py: the prior as initial raw prediction (DummyClassifier,
  clipped, then _loss/link.py's MultinomialLogit or logit), one tree per
  class and stage on the negative gradient of _loss/_loss.pyx.tp's
  HalfMultinomialLoss (HalfBinomialLoss and one tree if binary), then
  `_update_terminal_regions`' Newton step per leaf (with the (K-1)/K factor
  and `_safe_divide`), raw prediction += learning_rate * leaf value;
  `feature_importances_`.
* tree/_tree.pyx (DepthFirstTreeBuilder, compute_feature_importances),
  tree/_splitter.pyx (node_split_best), tree/_partitioner.pyx and
  tree/_criterion.pyx (MSE): nodes in the builder's order; the features
  visited in the splitter's Fisher-Yates order, from the tree's rand_r seed
  drawn from the shared RandomState as sklearn draws it (so exact ties
  between features go the same way); constant features (max <= min +
  FEATURE_THRESHOLD, float32); positions skipped within FEATURE_THRESHOLD;
  the first largest proxy improvement; threshold value[p-1] / 2.0 +
  value[p] / 2.0 in float64 (sklearn 1.9.1's best splitter has no rule for a
  midpoint equal to the upper value: the midpoint of two float32 values
  computed so lies strictly between them); leaves where impurity <= EPSILON
  or no split is allowed.
* The roundings: every sum sklearn accumulates (criterion sums in sklearn's
  order of the samples, which its partition loop permutes; forward or
  backward updates; numpy's pairwise sums in the leaf update) is formed in
  the same order, so the floats come out bit-identical, not just close,
  where numpy's exp, log and reductions round as the C library's do. Its
  AVX2 kernels do (checked on AMD EPYC, and on an Intel Xeon with
  NPY_DISABLE_CPU_FEATURES='X86_V4 AVX512_ICL AVX512_SPR', which
  tests/conftest.py sets); its AVX-512 kernels do not, and there results
  agree up to rounding, which can flip a near-tie between features (on that
  Xeon, one tree of the 3-class test chose another feature at stage 8).

How it is faster: the inputs are sorted once per feature; a child's samples
by feature are its parent's, filtered in order. The split search ranks all
positions of all features with exact integer (fixed-point) prefix sums,
which numpy adds several times faster than floats, then rescores with
sklearn's float sums only the splits within a proven bound of the best.

Where it can differ from sklearn: on exact ties. Ties between features
that split the samples identically (duplicated codes) go the same way, as
the feature order is sklearn's; but inputs with equal values within a
feature, which sklearn's (unstable) sort orders arbitrarily, make sums
round differently, and then such a tie can go to another feature (the
training samples are split alike; the importance moves, and so do
predictions for new points between the two thresholds).
disentanglement_lib left random_state unset, so its ties were random
anyway. tests/test_metric_gradient_boosting.py checks equality on
continuous, duplicated and nearly equal codes. Parameters other than
DCI's raise ValueError.
"""

import dataclasses
import math

import numpy as np
import scipy.special
import scipy.stats

# Constants of sklearn 1.9.1's trees.
# sklearn/tree/_partitioner.pxd: values closer than this (added in float32)
# are not split apart.
_FEATURE_THRESHOLD = np.float32(1e-7)
# Rounds of skipping ties near the best split before skipping all of them
# (_best_split): ties are rare in a trained model's codes, and common in a
# collapsed one's.
_LAZY_TIE_ROUNDS = 3
# sklearn/tree/_tree.pyx: an impurity at most this is zero.
_EPSILON = np.finfo(np.float64).eps
_FLOAT_MAX = np.finfo(np.float64).max
# sklearn/tree/_utils.pxd: the range of the trees' random integers.
_RAND_R_MAX = 2**31 - 1
# sklearn/tree/_tree.pyx: child index of a leaf, feature/threshold of a leaf.
TREE_LEAF = -1
TREE_UNDEFINED = -2


@dataclasses.dataclass(frozen=True)
class Tree:
  """One regression tree, in the node order and layout of sklearn's `tree_`.

  Nodes are numbered in the order sklearn's depth-first builder adds them
  (pre-order, left child first), so each array equals the attribute of the
  same name of sklearn's `DecisionTreeRegressor.tree_` (`value` flattened).
  """
  children_left: np.ndarray  # (node_count,) int, TREE_LEAF at leaves.
  children_right: np.ndarray  # (node_count,) int.
  feature: np.ndarray  # (node_count,) int, TREE_UNDEFINED at leaves.
  threshold: np.ndarray  # (node_count,) float64; x <= threshold goes left.
  value: np.ndarray  # (node_count,) float64; leaves: the Newton step.
  impurity: np.ndarray  # (node_count,) float64 (squared error).
  n_node_samples: np.ndarray  # (node_count,) int.

  @property
  def node_count(self) -> int:
    return len(self.feature)

  def apply(self, x: np.ndarray) -> np.ndarray:
    """Leaf index of each row of `x` (float32), as sklearn's `Tree.apply`."""
    node = np.zeros(len(x), np.intp)
    rows = np.arange(len(x))
    internal = np.flatnonzero(self.children_left[node] != TREE_LEAF)
    while internal.size:
      at = node[internal]
      # float32 value against float64 threshold, compared in float64 as in
      # sklearn's `X[i, feature] <= threshold`.
      go_left = (x[rows[internal], self.feature[at]] <= self.threshold[at])
      node[internal] = np.where(go_left, self.children_left[at],
                                self.children_right[at])
      internal = internal[self.children_left[node[internal]] != TREE_LEAF]
    return node

  def feature_importances(self, n_features: int) -> np.ndarray:
    """sklearn's `compute_feature_importances(normalize=False)`."""
    importances = np.zeros(n_features)
    weighted = self.n_node_samples * self.impurity
    # Same expression, node order and accumulation as the Cython loop.
    for node in np.flatnonzero(self.children_left != TREE_LEAF):
      importances[self.feature[node]] += (
          weighted[node] - weighted[self.children_left[node]]
          - weighted[self.children_right[node]])
    return importances / self.n_node_samples[0]


class _RandR:
  """sklearn's `our_rand_r` (sklearn/utils/_random.pxd), a 32-bit xorshift."""

  def __init__(self, seed: int):
    self.state = seed

  def rand_int(self, low: int, high: int) -> int:
    """sklearn/tree/_utils.pyx `rand_int`: an int in [low, high)."""
    state = self.state or 1  # DEFAULT_SEED replaces 0.
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    self.state = state
    return low + (state % (_RAND_R_MAX + 1)) % (high - low)


def _sequential_sum(values: np.ndarray, start: float = 0.) -> float:
  """`start + values[0] + values[1] + ...`, left to right, as a C loop adds.

  numpy's `sum` adds pairwise, which rounds differently; `cumsum` adds in
  sequence.
  """
  if len(values) < 64:  # a Python loop is faster on short arrays
    for value in values.tolist():
      start += value
    return start
  if start != 0.:
    values = np.concatenate(([start], values))
  return float(np.cumsum(values)[-1])


def _mse(sq_sum, total, count):
  """MSE.node_impurity / children_impurity: mean of squares - mean**2.

  The Cython `(total / count) ** 2.0` compiles to a product; Python's `**`
  calls pow(), which can round differently.
  """
  mean = total / count
  return sq_sum / count - mean * mean


def _view(buffer, shape):
  """The first prod(shape) entries of a flat buffer, reshaped."""
  return buffer[:math.prod(shape)].reshape(shape)


class _Workspace:
  """Buffers that every node of every tree reuses.

  A fresh (F, n) array per node costs more than the arithmetic on it: the
  allocator returns such blocks to the OS and faults them in again.
  """

  def __init__(self, n, num_features):
    size = n * num_features
    self.size = size
    self.ints = np.empty(size, np.int64)
    self.sums = np.empty(size, np.int64)
    self.score = np.empty(size)
    self.goes_left = np.empty(size, bool)
    self.goes_right = np.empty(size, bool)
    self._children = {}

  def children(self, depth):
    """The buffer for the sorted samples of the nodes at one depth.

    The two children of a node partition its samples, so they share their
    depth's buffer; depth-first order leaves a pending right child's depth
    untouched until it is split.
    """
    if depth not in self._children:
      self._children[depth] = np.empty(self.size, np.intp)
    return self._children[depth]


@dataclasses.dataclass(frozen=True)
class _FixedPoint:
  """A tree's target as integers round(y * 2**shift).

  numpy adds integers several times faster than floats in `cumsum`, and
  integer prefix sums are exact. The split search ranks positions by them,
  then rescores the few within a proven bound of the best exactly as
  sklearn does.
  """
  values: np.ndarray  # (n,) int64
  shift: int
  abs_sum: float  # at least sum |y|
  abs_max: float  # max |y|

  @classmethod
  def of(cls, y):
    abs_y = np.abs(y)
    abs_sum = float(abs_y.sum()) * (1 + 1e-9)  # numpy's sum is inexact
    # Sums of |y| and of |y - mean| stay below 2**62; at most 2**500 keeps
    # the squares of scaled sums finite.
    shift = 0 if abs_sum == 0. else min(500, 60 - math.frexp(abs_sum)[1])
    values = np.rint(np.ldexp(y, shift)).astype(np.int64)
    return cls(values, shift, abs_sum, float(abs_y.max()))

  def tolerance(self, m, total, best):
    """Twice a bound on |score - sklearn's proxy + total**2 / m|, scaled.

    With E bounding both left sums' distance from the exact one, the
    proxies differ by at most 4 E max|y| + 6 E**2 plus their own roundings
    (11 ulps); the bound used is twice that. sklearn's left sums are
    sequences of at most 2m + 1 float additions of terms (sum_total, +-y)
    of total magnitude at most 3 sum|y|, sum_total being itself off by at
    most 1.01 m ulps of sum|y|; the fixed-point ones are off by the m
    roundings of y and of the mean to multiples of 2**-shift.

    Args:
      m: the node's size.
      total: its sum_total.
      best: the best score (scaled by 2**(2 shift)).
    """
    u = 2.**-53
    err = ((7.1 * m + 4.) * u * self.abs_sum  # sklearn's sums
           + m * 2.**-self.shift + u * self.abs_sum)  # the fixed-point ones
    bound = 2. * (4. * err * self.abs_max + 6. * err * err + 11. * u * (
        total * total / m + math.ldexp(max(best, 0.), -2 * self.shift)))
    return 2. * math.ldexp(bound, 2 * self.shift)


def _best_split(sample_ids, y, fixed, total, candidates, min_samples_leaf,
                data, work):
  """The split sklearn's `node_split_best` picks: (feature, n_left) or None.

  sklearn (sklearn/tree/_splitter.pyx, _criterion.pyx) scores a split by the
  MSE proxy `sum_left**2 / n_left + sum_right**2 / n_right`, visiting
  features in the order `candidates` lists them and the left child's size
  n_left upwards, and keeps the first of the largest. `DensePartitioner.
  next_p` skips n_left when value[n_left] <= value[n_left - 1] +
  FEATURE_THRESHOLD (in float32, samples sorted by the feature).

  The proxy equals `total**2 / m + (sum_left - n_left * total / m)**2 * m /
  (n_left * n_right)`. The second term, from fixed-point sums, ranks all
  splits; the few within `_FixedPoint.tolerance` of the best are checked
  for skipping (rare, so not checked elsewhere) and rescored with sklearn's
  sums and formula.

  Args:
    sample_ids: (F, m) the node's samples sorted by each feature.
    y: (n,) float64 target.
    fixed: `_FixedPoint` of y.
    total: the node's `sum_total` as sklearn computes it.
    candidates: the non-constant features, in sklearn's visiting order.
    min_samples_leaf: the fewest samples a child may have.
    data: the `_Presorted` inputs.
    work: the `_Workspace`.
  """
  num_features, m = sample_ids.shape
  lo, hi = min_samples_leaf, m - min_samples_leaf
  if lo > hi:
    return None
  n_left = np.arange(lo, hi + 1, dtype=np.float64)
  # Integer targets minus the node's mean: their prefix sums are
  # sum_left - n_left * total / m, up to the rounding of the mean.
  mean = int(np.rint(math.ldexp(total / m, fixed.shift)))
  ints = _view(work.ints, (num_features, m))
  (fixed.values - mean).take(sample_ids, out=ints, mode='clip')  # no copy
  sums = _view(work.sums, (num_features, hi))
  np.cumsum(ints[:, :hi], axis=1, out=sums)
  score = _view(work.score, (num_features, hi - lo + 1))
  np.copyto(score, sums[:, lo - 1:], casting='unsafe')
  score *= score
  score *= m / (n_left * (m - n_left))
  row_best = score.max(axis=1)
  rounds = 0
  while True:
    rounds += 1
    if rounds == _LAZY_TIE_ROUNDS:
      # Ties everywhere (a collapsed encoder's codes: a handful of distinct
      # values in thousands of samples): skipping them near the best one
      # round at a time would take a round per tie. Skip all at once; the
      # rounds below then find none. The same positions end up skipped, so
      # the same split is found.
      _skip_all_ties(score, sample_ids, data.x_by_feature, candidates, lo, hi)
      row_best = score.max(axis=1)
    best = max(row_best[candidates])
    if best == -np.inf:
      return None
    # Never -inf: skipped positions (set to -inf) stay out.
    floor = max(best - fixed.tolerance(m, total, best), -_FLOAT_MAX)
    near = {}  # feature: its positions (n_left - lo) near the best
    for feature in candidates:
      if row_best[feature] >= floor:
        cols = np.flatnonzero(score[feature] >= floor)
        ids = sample_ids[feature]
        values = data.x_by_feature[feature]
        skipped = (values.take(ids[cols + lo])
                   <= values.take(ids[cols + lo - 1]) + _FEATURE_THRESHOLD)
        if skipped.any():
          score[feature, cols[skipped]] = -np.inf
          row_best[feature] = score[feature].max()
        near[feature] = cols[~skipped]
    if all(row_best[feature] >= floor for feature in near):
      break  # else the best was skipped: look again below it
  found, found_proxy = None, -np.inf
  for feature, cols in near.items():  # in visiting order
    proxy = _sklearn_proxies(y, sample_ids[feature],
                             data.x_by_feature[feature], total, lo, cols,
                             data.tie_length[feature])
    col = int(np.argmax(proxy))  # the first of equal values
    if proxy[col] > found_proxy:  # strictly, as sklearn
      found, found_proxy = (feature, int(cols[col]) + lo), proxy[col]
  return found


def _skip_all_ties(score, sample_ids, x_by_feature, candidates, lo, hi):
  """Sets score[f, n_left - lo] to -inf wherever sklearn skips n_left: the
  value at n_left is within _FEATURE_THRESHOLD of the one before it."""
  for feature in candidates:
    values = x_by_feature[feature].take(sample_ids[feature, lo - 1:hi + 1])
    tied = values[1:] <= values[:-1] + _FEATURE_THRESHOLD
    score[feature, tied] = -np.inf


def _proxy(sum_left, total, n_left, n_right):
  """MSE.proxy_impurity_improvement, vectorised with the same roundings."""
  sum_right = total - sum_left
  return sum_left * sum_left / n_left + sum_right * sum_right / n_right


def _sklearn_proxies(y, ids, values, total, lo, cols, tie_length):
  """Proxies of some splits along one feature, summed as sklearn sums.

  `RegressionCriterion.update(new_pos)` adds samples [pos, new_pos) to the
  left sum one at a time when they are no more than the rest of the node,
  and otherwise restarts from `sum_total` and subtracts samples [new_pos,
  end) from the end, which rounds differently; pos is the last position
  evaluated (not skipped), or 0 at first. Skipped positions come in runs of
  fewer than `tie_length`, so in a node of at least 2 (tie_length + lo)
  samples the second way can only happen within tie_length of the end.

  Args:
    y: (n,) float64 target.
    ids: (m,) the node's samples sorted by the feature.
    values: (n,) float32, the feature.
    total: the node's sum_total.
    lo: min_samples_leaf.
    cols: ascending n_left - lo of the splits to score, none skipped.
    tie_length: `_Presorted.tie_length` of the feature.

  Returns:
    (len(cols),) proxies.
  """
  m = ids.size
  hi = m - lo
  n_left = cols + lo
  sum_left = np.cumsum(y.take(ids[:n_left[-1]]))[n_left - 1]
  n_left = n_left.astype(np.float64)
  whole = m < 2 * (tie_length + lo)
  if not whole and n_left[-1] <= m - tie_length:
    return _proxy(sum_left, total, n_left, m - n_left)
  ys = y.take(ids)
  # The positions sklearn evaluates, from one that a backward step cannot
  # be at, or from the start.
  start = lo if whole else m - 2 * tie_length
  window = values.take(ids[start - 1:hi + 1])
  evaluated = start + np.flatnonzero(
      window[1:] > window[:-1] + _FEATURE_THRESHOLD)
  previous = np.append(0 if whole else evaluated[0] - 1, evaluated[:-1])
  backward = np.flatnonzero(evaluated - previous > m - evaluated)
  if not backward.size or evaluated[backward[0]] > n_left[-1]:
    return _proxy(sum_left, total, n_left, m - n_left)
  # The left sums at the evaluated positions from the first backward step.
  replayed = {}
  bounds = np.append(backward, evaluated.size)
  for a, b in zip(bounds[:-1], bounds[1:]):
    at = evaluated[a]
    # reverse_reset, then subtract samples end-1, ..., at.
    restart = _sequential_sum(-ys[at:][::-1], start=total)
    # Then forward again from there, up to the next backward step.
    following = evaluated[a:b]
    sums = np.cumsum(np.concatenate(([restart], ys[at:following[-1]])))
    replayed.update(zip(following.tolist(), sums[following - at].tolist()))
  sum_left = np.array([replayed.get(int(p), s)
                       for p, s in zip(n_left, sum_left)])
  return _proxy(sum_left, total, n_left, m - n_left)


def _sklearn_partition(order, goes_left):
  """`samples[start:end]` after `DensePartitioner.partition_samples_final`.

  sklearn moves a right-going sample at the front pointer to the back pointer
  and looks again at what it swapped in; the result, in closed form: the
  left part keeps its left-going samples in place and takes, for the t-th
  right-going one among them, the t-th left-going sample counted from the
  end; the right part is the rest of the node shifted by one place.

  Args:
    order: (m,) the node's samples in sklearn's order before partitioning.
    goes_left: (m,) bool, aligned with `order`.

  Returns:
    (m,) the samples in sklearn's order after partitioning.
  """
  m = order.size
  n_left = int(np.count_nonzero(goes_left))
  out = np.empty_like(order)
  out[:n_left] = order[:n_left]
  out[n_left:m - 1] = order[n_left + 1:]
  front_right = np.flatnonzero(~goes_left[:n_left])
  back_left = n_left + np.flatnonzero(goes_left[n_left:])[::-1]
  out[front_right] = order[back_left]
  if front_right.size:
    out[m - 1] = order[front_right[0]]
    out[back_left[:-1] - 1] = order[front_right[1:]]
    last_swapped = back_left[-1]
  else:
    last_swapped = m
  if last_swapped > n_left:
    out[last_swapped - 1] = order[n_left]
  return out


@dataclasses.dataclass
class _Node:
  """A node on the builder's stack (sklearn's StackRecord plus its data)."""
  order: np.ndarray  # its samples, in sklearn's `samples[start:end]` order
  depth: int
  parent: int
  is_left: bool
  impurity: float
  n_constant_features: int
  total: float  # criterion.sum_total
  sq_total: float  # criterion.sq_sum_total
  sample_ids: np.ndarray | None = None  # (F, m) sorted by each feature


@dataclasses.dataclass(frozen=True)
class _Presorted:
  """The training inputs, arranged once for every tree."""
  x: np.ndarray  # (n, F) float32
  x_by_feature: np.ndarray  # (F, n) float32
  order: np.ndarray  # (F, n) the samples sorted by each feature
  # (F,) int: the most samples in a row of the sorted order with each within
  # FEATURE_THRESHOLD of the previous; a node's runs of skipped positions
  # are shorter (its neighbours within that distance were neighbours here,
  # or had only such samples between them).
  tie_length: np.ndarray

  @classmethod
  def of(cls, x):
    x_by_feature = np.ascontiguousarray(x.T)
    order = np.argsort(x_by_feature, axis=1, kind='stable')
    sorted_x = np.take_along_axis(x_by_feature, order, axis=1)
    tie_length = []
    for row in sorted_x:
      close = np.flatnonzero(row[1:] <= row[:-1] + _FEATURE_THRESHOLD)
      run_starts = np.flatnonzero(np.diff(close, prepend=-2) != 1)
      runs = np.diff(np.append(run_starts, close.size))
      tie_length.append(int(runs.max(initial=0)) + 1)
    return cls(x, x_by_feature, order, np.array(tie_length))


class _TreeBuilder:
  """sklearn's DepthFirstTreeBuilder with the best splitter and MSE."""

  def __init__(self, x, max_depth, min_samples_split, min_samples_leaf):
    self.data = _Presorted.of(x)
    self.max_depth = max_depth
    self.min_samples_split = min_samples_split
    self.min_samples_leaf = min_samples_leaf
    n, num_features = x.shape
    self.work = _Workspace(n, num_features)
    self.in_left = np.zeros(n, bool)  # scratch, all False between uses
    self.feature_range = np.arange(num_features)

  def _is_leaf(self, depth, m, impurity):
    return (depth >= self.max_depth or m < self.min_samples_split
            or m < 2 * self.min_samples_leaf or impurity <= _EPSILON)

  def grow(self, y, seed):
    """One tree on target y; returns (Tree, leaf index of each sample).

    Args:
      y: (n,) float64 target.
      seed: the splitter's rand_r seed (drawn as sklearn draws it).
    """
    n, num_features = self.data.x.shape
    rand = _RandR(seed)
    fixed = _FixedPoint.of(y)
    features = list(range(num_features))
    constant_features = [0] * num_features
    nodes = []  # [left, right, feature, threshold, value, impurity, n]
    leaf_of = np.empty(n, np.intp)
    total = _sequential_sum(y)
    sq_total = _sequential_sum(y * y)
    stack = [_Node(np.arange(n), 0, -1, False, _mse(sq_total, total, n), 0,
                   total, sq_total, self.data.order)]
    while stack:
      node = stack.pop()
      m = node.order.size
      split = None
      if not self._is_leaf(node.depth, m, node.impurity):
        split = self._split(node, y, fixed, rand, features,
                            constant_features)
      node_id = len(nodes)
      if node.parent >= 0:
        nodes[node.parent][0 if node.is_left else 1] = node_id
      nodes.append([TREE_LEAF, TREE_LEAF, TREE_UNDEFINED,
                    float(TREE_UNDEFINED), node.total / m, node.impurity, m])
      if split is None:
        leaf_of[node.order] = node_id
        continue
      nodes[-1][2:4] = split['feature'], split['threshold']
      split['left'].parent = split['right'].parent = node_id
      stack.append(split['right'])
      stack.append(split['left'])
    columns = list(zip(*nodes))
    tree = Tree(
        children_left=np.array(columns[0], np.intp),
        children_right=np.array(columns[1], np.intp),
        feature=np.array(columns[2], np.intp),
        threshold=np.array(columns[3], np.float64),
        value=np.array(columns[4], np.float64),
        impurity=np.array(columns[5], np.float64),
        n_node_samples=np.array(columns[6], np.intp))
    return tree, leaf_of

  def _draw_features(self, constant, n_known, rand, features,
                     constant_features):
    """node_split_best's Fisher-Yates draw of the features.

    The order in which sklearn visits the features decides between equal
    splits, and the draws advance the tree's random state.

    Returns:
      (visited: the features sklearn sorts, in order; candidates: those not
      constant; number of constant features known to the children).
    """
    num_features = len(features)
    f_i = num_features
    n_visited = n_found = n_drawn = 0
    n_total = n_known
    visited, candidates = [], []
    while f_i > n_total and (n_visited < num_features
                             or n_visited <= n_found + n_drawn):
      n_visited += 1
      f_j = rand.rand_int(n_drawn, f_i - n_found)
      if f_j < n_known:
        features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
        n_drawn += 1
        continue
      f_j += n_found
      feature = features[f_j]
      visited.append(feature)
      if constant[feature]:
        features[f_j], features[n_total] = features[n_total], features[f_j]
        n_found += 1
        n_total += 1
        continue
      f_i -= 1
      features[f_i], features[f_j] = features[f_j], features[f_i]
      candidates.append(feature)
    features[:n_known] = constant_features[:n_known]
    constant_features[n_known:n_total] = features[n_known:n_total]
    return visited, candidates, n_total

  def _split(self, node, y, fixed, rand, features, constant_features):
    """node_split_best plus the builder's bookkeeping; None: a leaf."""
    sample_ids = node.sample_ids
    x = self.data.x
    m = sample_ids.shape[1]
    lowest = x[sample_ids[:, 0], self.feature_range]
    highest = x[sample_ids[:, -1], self.feature_range]
    # A feature is constant in the node when max <= min + FEATURE_THRESHOLD.
    visited, candidates, n_constant = self._draw_features(
        (highest <= lowest + _FEATURE_THRESHOLD).tolist(),
        node.n_constant_features, rand, features, constant_features)
    if not candidates:
      return None
    found = _best_split(sample_ids, y, fixed, node.total, candidates,
                        self.min_samples_leaf, self.data, self.work)
    if found is None:
      return None
    best, n_left = found
    n_right = m - n_left
    threshold = (float(x[sample_ids[best, n_left - 1], best]) / 2.
                 + float(x[sample_ids[best, n_left], best]) / 2.)
    # The node's samples are left sorted by the last feature sklearn sorted
    # (a sort of equal values keeps their order); the partition then
    # reorders them, and that order fixes how the children's sums round.
    order = node.order
    for feature in reversed(visited):
      if lowest[feature] != highest[feature]:
        order = sample_ids[feature]
        break
    in_left = self.in_left
    in_left[sample_ids[best, :n_left]] = True
    order = _sklearn_partition(order, in_left[order])
    y_left, y_right = y[order[:n_left]], y[order[n_left:]]
    total_left = _sequential_sum(y_left)
    sq_left = _sequential_sum(y_left * y_left)
    total_right = _sequential_sum(y_right)
    # criterion.reset(); update(pos); children_impurity(...)
    if n_left <= n_right:
      sum_left = total_left
    else:
      sum_left = _sequential_sum(-y_right[::-1], start=node.total)
    sum_right = node.total - sum_left
    sq_right = node.sq_total - sq_left
    impurity_left = _mse(sq_left, sum_left, n_left)
    impurity_right = _mse(sq_right, sum_right, n_right)
    n = len(y)
    improvement = (m / n) * (node.impurity - n_right / m * impurity_right
                             - n_left / m * impurity_left)
    if improvement + _EPSILON < 0.:  # min_impurity_decrease = 0
      in_left[sample_ids[best, :n_left]] = False
      return None
    depth = node.depth + 1
    left = _Node(order[:n_left], depth, -1, True, impurity_left, n_constant,
                 total_left, sq_left)
    right = _Node(order[n_left:], depth, -1, False, impurity_right,
                  n_constant, total_right, _sequential_sum(y_right * y_right))
    if any(not self._is_leaf(depth, child.order.size, child.impurity)
           for child in (left, right)):
      self._sort_children(node.sample_ids, left, right)
    in_left[sample_ids[best, :n_left]] = False
    return dict(feature=best, threshold=threshold, left=left, right=right)

  def _sort_children(self, sample_ids, left, right):
    """Each child's samples by feature: the node's, filtered, in order."""
    num_features, m = sample_ids.shape
    work = self.work
    flat_ids = sample_ids.ravel()
    goes_left = _view(work.goes_left, (num_features * m,))
    goes_right = _view(work.goes_right, (num_features * m,))
    self.in_left.take(flat_ids, out=goes_left, mode='clip')
    np.logical_not(goes_left, out=goes_right)
    buffer = work.children(left.depth)
    offset = 0
    for child, goes in ((left, goes_left), (right, goes_right)):
      kept = np.flatnonzero(goes)
      child.sample_ids = buffer[offset:offset + kept.size].reshape(
          num_features, child.order.size)
      flat_ids.take(kept, out=child.sample_ids.ravel(), mode='clip')
      offset += kept.size


class GradientBoostingClassifier:
  """sklearn 1.9.1's GradientBoostingClassifier for the parameters DCI uses.

  Takes sklearn's keyword arguments; those DCI does not use must keep the
  values in `SUPPORTED` (sklearn's defaults), else ValueError.

  Attributes (after `fit`), as sklearn's: classes_, n_classes_,
  n_features_in_, n_trees_per_iteration_, estimators_ ((n_estimators, K)
  array of `Tree`), feature_importances_; and train_raw_predictions_ ((n,
  K) float64) and train_predictions_, what `decision_function` and `predict`
  return on the training inputs, kept from the fit.
  """

  # Parameters that must keep sklearn's default (the value given here).
  SUPPORTED = dict(
      loss='log_loss', subsample=1.0, min_weight_fraction_leaf=0.0,
      min_impurity_decrease=0.0, init=None, max_features=None,
      max_leaf_nodes=None, warm_start=False, n_iter_no_change=None,
      ccp_alpha=0.0, verbose=0)
  # Parameters without effect here, as in sklearn without early stopping.
  IGNORED = ('validation_fraction', 'tol')

  def __init__(self, *, learning_rate=0.1, n_estimators=100, max_depth=3,
               min_samples_split=2, min_samples_leaf=1, random_state=None,
               **fixed):
    for name, value in fixed.items():
      if name in self.IGNORED:
        continue
      if name not in self.SUPPORTED:
        raise ValueError(f'unknown parameter {name}={value!r}')
      if value != self.SUPPORTED[name]:
        raise ValueError(f'{name}={value!r} is not supported, only '
                         f'{self.SUPPORTED[name]!r}')
    for name, value, lowest in (('n_estimators', n_estimators, 1),
                                ('max_depth', max_depth, 1),
                                ('min_samples_split', min_samples_split, 2),
                                ('min_samples_leaf', min_samples_leaf, 1)):
      # sklearn also takes fractions (and max_depth=None); DCI does not.
      if not isinstance(value, (int, np.integer)) or value < lowest:
        raise ValueError(f'{name} must be an int >= {lowest}, got {value!r}')
    self.learning_rate = float(learning_rate)
    self.n_estimators = int(n_estimators)
    self.max_depth = int(max_depth)
    self.min_samples_split = int(min_samples_split)
    self.min_samples_leaf = int(min_samples_leaf)
    self.random_state = random_state

  def fit(self, x, y):
    """Fits the stages of trees; returns self."""
    x = self._checked_inputs(x, fitted=False)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
      raise ValueError(f'y must be ({len(x)},), got {y.shape}')
    self.classes_, y_encoded = np.unique(y, return_inverse=True)
    self.n_classes_ = len(self.classes_)
    if self.n_classes_ < 2:
      raise ValueError('y contains 1 class, at least 2 are required')
    self.n_features_in_ = x.shape[1]
    binary = self.n_classes_ == 2
    num_trees = self.n_trees_per_iteration_ = 1 if binary else self.n_classes_
    counts = np.bincount(y_encoded)
    self._prior = counts / counts.sum()  # DummyClassifier('prior')
    raw = np.tile(self._init_raw_prediction(), (len(x), 1))
    # (K, n): per class, the 0/1 target of the leaf update (y if binary).
    targets = (y_encoded.astype(np.float64)[None, :] if binary else
               (y_encoded == np.arange(num_trees)[:, None]).astype(np.float64))
    builder = _TreeBuilder(x, self.max_depth, self.min_samples_split,
                           self.min_samples_leaf)
    # sklearn hands one RandomState to every tree, which draws its
    # splitter's seed from it (Splitter.init); None is numpy's global one.
    if self.random_state is None:
      rng = np.random  # np.random.randint draws from the global one
    elif isinstance(self.random_state, np.random.RandomState):
      rng = self.random_state
    else:
      rng = np.random.RandomState(self.random_state)
    self.estimators_ = np.empty((self.n_estimators, num_trees), object)
    for stage in range(self.n_estimators):
      # (K, n): each tree's target contiguous.
      neg_gradient = np.ascontiguousarray(
          self._negative_gradient(y_encoded, raw).T)
      for k in range(num_trees):
        seed = rng.randint(0, _RAND_R_MAX)
        tree, leaf_of = builder.grow(neg_gradient[k], seed)
        tree = self._newton_leaves(tree, leaf_of, neg_gradient[k], targets[k])
        raw[:, k] += self.learning_rate * tree.value.take(leaf_of)
        self.estimators_[stage, k] = tree
    self.train_raw_predictions_ = raw
    self.train_predictions_ = self._classes_of(raw)
    return self

  def _checked_inputs(self, x, fitted=True):
    x = np.asarray(x, dtype=np.float32)  # sklearn's check_array(float32)
    if x.ndim != 2 or (fitted and x.shape[1] != self.n_features_in_):
      raise ValueError(f'x must be (num_points, num_features), got {x.shape}')
    if not np.isfinite(x).all():
      raise ValueError('x contains NaN or infinity')
    return x

  def _init_raw_prediction(self):
    """The prior's raw prediction, (K,) (sklearn's _init_raw_predictions)."""
    eps = np.finfo(np.float64).eps
    if self.n_classes_ == 2:
      proba = np.clip(self._prior[1:], eps, 1 - eps, dtype=np.float64)
      return scipy.special.logit(proba)  # LogitLink
    proba = np.clip(self._prior[None, :], eps, 1 - eps, dtype=np.float64)
    # MultinomialLogit.link: log(p / geometric mean of p).
    return np.log(proba / scipy.stats.gmean(proba, axis=1)[:, None])[0]

  def _negative_gradient(self, y_encoded, raw):
    """-HalfMultinomialLoss/HalfBinomialLoss.gradient, as sklearn/_loss."""
    if self.n_classes_ == 2:
      raw = raw[:, 0]
      y = y_encoded.astype(np.float64)
      gradient = np.empty_like(raw)
      # cgradient_half_binomial, both branches.
      far = raw <= -37
      exp_tmp = np.exp(-raw[~far])
      gradient[~far] = (((1 - y[~far]) - y[~far] * exp_tmp)
                        / (1 + exp_tmp))
      gradient[far] = np.exp(raw[far]) - y[far]
      return -gradient[:, None]
    # sum_exp_minus_max, then p_k / sum_exps - (y == k); the sum over
    # classes goes in sequence as in the Cython loop.
    exps = np.exp(raw - raw.max(axis=1, keepdims=True))
    sum_exps = exps[:, 0].copy()
    for k in range(1, exps.shape[1]):
      sum_exps += exps[:, k]
    proba = exps / sum_exps[:, None]
    return -(proba - (y_encoded[:, None] == np.arange(exps.shape[1])))

  def _newton_leaves(self, tree, leaf_of, neg_gradient, target):
    """_update_terminal_regions: one Newton step per leaf."""
    value = tree.value.copy()
    # Samples grouped by leaf, ascending within a leaf as np.nonzero gives
    # them; a stable sort of small ints is a radix sort.
    keys = leaf_of.astype(np.int16) if tree.node_count < 2**15 else leaf_of
    by_leaf = np.argsort(keys, kind='stable')
    counts = np.bincount(leaf_of, minlength=tree.node_count)
    leaves = np.flatnonzero(counts)
    ends = np.cumsum(counts)[leaves]
    starts = ends - counts[leaves]
    factor = (self.n_classes_ - 1) / self.n_classes_
    # The hessian prob * (1 - prob), prob = y - neg_gradient, elementwise as
    # sklearn computes it on each leaf's samples.
    prob = target - neg_gradient
    hessian = prob * (1 - prob)
    for leaf, start, end in zip(leaves, starts, ends):
      indices = by_leaf[start:end]
      count = float(end - start)
      # np.average(..., weights=ones) is sum / count, with numpy's
      # (pairwise) sum of the leaf's samples in ascending order.
      numerator = neg_gradient.take(indices).sum() / count
      if self.n_classes_ > 2:
        numerator *= factor
      denominator = hessian.take(indices).sum() / count
      value[leaf] = (0. if abs(denominator) < 1e-150
                     else float(numerator) / float(denominator))
    return dataclasses.replace(tree, value=value)

  def decision_function(self, x):
    """Raw predictions, (n,) if binary else (n, K), as sklearn's."""
    x = self._checked_inputs(x)
    raw = np.tile(self._init_raw_prediction(), (len(x), 1))
    for stage in self.estimators_:
      for k, tree in enumerate(stage):
        raw[:, k] += self.learning_rate * tree.value.take(tree.apply(x))
    return raw[:, 0] if raw.shape[1] == 1 else raw

  def predict(self, x):
    """Class of each row of x."""
    return self._classes_of(self.decision_function(x))

  def _classes_of(self, raw):
    if raw.ndim == 1 or raw.shape[1] == 1:
      return self.classes_[(raw.ravel() >= 0).astype(int)]
    return self.classes_[np.argmax(raw, axis=1)]

  @property
  def feature_importances_(self):
    """sklearn's: the mean over trees with a split, normalised."""
    relevant = [tree.feature_importances(self.n_features_in_)
                for stage in self.estimators_ for tree in stage
                if tree.node_count > 1]
    if not relevant:
      return np.zeros(self.n_features_in_, dtype=np.float64)
    mean = np.mean(relevant, axis=0, dtype=np.float64)
    return mean / np.sum(mean)
