"""The one exception type the CLI turns into a single `error: ...` line."""


class JaxlmError(Exception):
  """A user-facing error: bad config, bad input file, missing checkpoint."""


class ConversionError(JaxlmError):
  """Weights that do not fit the target model (keys or shapes named)."""
