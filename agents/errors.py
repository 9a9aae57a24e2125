"""Errors raised by spikerl's training loops."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; raised before the optimizer step, so parameters stay finite.

    Attributes: ``loss_name`` ("critic", "actor", "proxy", "ent_coef") and ``update`` (the gradient-update
    number, SB3's ``_n_updates`` counting from 1).
    """

    def __init__(self, loss_name: str, update: int, value: float) -> None:
        self.loss_name, self.update, self.value = loss_name, int(update), float(value)
        super().__init__(
            f"non-finite {loss_name} loss ({value}) at gradient update {update}; training stopped before the "
            f"optimizer step, so the parameters are those of update {update - 1}. Check rewards/observations "
            f"for NaN or inf, or lower the learning rates"
        )
