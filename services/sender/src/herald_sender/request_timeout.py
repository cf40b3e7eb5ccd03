"""How long one request to the external API may take: learned from its recent answers.

A fixed timeout must be long enough for an API that answers in seconds, and then every
request that hangs holds a worker slot (and its whole command) for that long: with 2 % of
requests hanging and a 10 s timeout, the benchmark's faults run sent 200 messages/s
instead of thousands. So the timeout follows the API: ``factor`` times the ``quantile``
of the last ``window`` answer times, between a floor and the configured maximum.

A request that times out counts as an answer that took the whole timeout (a censored
sample), so that when the API slows down for everyone, the quantile rises with it and the
timeout grows back towards the maximum instead of cutting every request short. A few
hanging requests stay above the quantile and do not move it.
"""

from collections import deque

from herald_common.metrics import SENDER_REQUEST_TIMEOUT


class RequestTimeout:
    def __init__(
        self,
        *,
        floor: float,
        ceiling: float,
        quantile: float = 0.9,
        factor: float = 4.0,
        window: int = 500,
        every: int = 50,
    ) -> None:
        self.floor = min(floor, ceiling)
        self.ceiling = ceiling
        self._quantile = quantile
        self._factor = factor
        self._every = every
        self._samples: deque[float] = deque(maxlen=window)
        self._since_update = 0
        # Until the API has answered a few times, the configured maximum.
        self.current = ceiling
        SENDER_REQUEST_TIMEOUT.set(self.current)

    def observe(self, seconds: float) -> None:
        """An answer came after ``seconds``, or a request timed out after ``seconds``."""
        self._samples.append(seconds)
        self._since_update += 1
        # Re-sorted every `every` answers, not per answer (README, Performance).
        if self._since_update >= self._every:
            self._since_update = 0
            ordered = sorted(self._samples)
            typical = ordered[int(self._quantile * (len(ordered) - 1))]
            self.current = min(self.ceiling, max(self.floor, self._factor * typical))
            SENDER_REQUEST_TIMEOUT.set(self.current)
