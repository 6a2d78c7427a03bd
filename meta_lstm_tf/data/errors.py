"""The data packages' error type."""


class DataError(ValueError):
  """A data source or class split is missing, corrupt or inconsistent."""
