"""Codes shared by the pooling kernels and the API, importable without Numba."""

#: Reduction codes for the generic kernels.
OP_MAX = 0
OP_MIN = 1
OP_SUM = 2  # sum divided by the clipped window area (avg); lp uses it on |x|**p

#: Index-map codes: a map sends a padded coordinate to a source row/column, or
#: to one of these.
FILL = -1  # constant padding: the fill value
SKIP = -2  # beyond the padded border (ceil mode): not part of the window
