"""Validation grids carry a header row naming their columns."""

import pytest
import torch

from layeringdiff.training.grids import HEADER_HEIGHT, PADDING, label_strip, labelled_grid


def tiles(n: int, size: int = 32) -> list[torch.Tensor]:
    return [torch.full((3, size, size), 0.1 * (i + 1)) for i in range(n)]


def test_header_row_labels_every_column_and_tiles_sit_below_it():
    labels = ["composite", "alpha", "F_hat"]
    grid = labelled_grid(tiles(6), labels)  # two rows of three
    step = 32 + PADDING
    assert grid.shape == (3, HEADER_HEIGHT + PADDING + 2 * step, PADDING + 3 * step)
    header = grid[:, :HEADER_HEIGHT]
    for col in range(3):
        span = header[:, :, PADDING + col * step : (col + 1) * step]
        assert (span < 0.5).any(), f"column {col} has no label text"  # dark text on white
    assert (header[:, :, :PADDING] == 1).all()  # left margin stays blank
    # Tiles keep their values and order: first row, second column is tile 1.
    top = HEADER_HEIGHT + PADDING
    torch.testing.assert_close(grid[:, top : top + 32, PADDING + step : 2 * step], tiles(6)[1])
    torch.testing.assert_close(grid[:, top + step : top + step + 32, PADDING:step], tiles(6)[3])


def test_labels_differ_in_pixels_and_long_labels_are_cut_to_the_tile():
    a, b = label_strip(["alpha"], 64), label_strip(["composite"], 64)
    assert not torch.equal(a, b)
    wide = label_strip(["a very long column name indeed"], 20)
    assert wide.shape == (3, HEADER_HEIGHT, 20 + 2 * PADDING)
    assert (wide[:, :, -PADDING:] == 1).all()  # text never runs past the tile


def test_tiles_that_do_not_fill_the_rows_are_refused():
    with pytest.raises(ValueError, match="5 tiles"):
        labelled_grid(tiles(5), ["a", "b", "c"])
