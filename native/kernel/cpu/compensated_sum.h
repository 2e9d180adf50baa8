// The compensated sum and the double-double mean from it, shared by the scalar oracle and the kernels.
// A fragment, not a header of its own: included inside each translation unit's anonymous namespace, so
// that no function compiled with AVX flags can be shared with a translation unit built without them.

// Sum of a sequence as an unevaluated pair high + low, exact to within a few ulps of the result however
// the terms cancel (Knuth's TwoSum on each addition, errors accumulated separately).
struct CompensatedSum {
  double high = 0;
  double low = 0;

  void add(double value) {
    const double sum = high + value;
    const double valuePart = sum - high;
    low += (high - (sum - valuePart)) + (value - valuePart);
    high = sum;
  }
};

// mean = (high + low) / count as mean + meanLow (the fma gives the division's exact remainder). An Inf
// or NaN total makes the low part meaningless: the mean is then Inf or NaN, as in PyTorch.
inline void meanOf(const CompensatedSum& sum, double count, double& mean, double& meanLow) {
  if (!std::isfinite(sum.high)) {
    mean = sum.high / count;
    meanLow = 0;
    return;
  }
  const double total = sum.high + sum.low;
  const double totalLow = sum.low - (total - sum.high);
  mean = total / count;
  meanLow = (std::fma(-mean, count, total) + totalLow) / count;
}
