"""Foreground prompt from word indices: how words are split and how indices are checked."""

import pytest

from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.prompt import foreground_prompt, split_words


def test_paper_example():
    assert foreground_prompt("A bird flying at sunset over the mountains", [0, 1, 2]) == "A bird flying"


@pytest.mark.parametrize(
    "prompt,words",
    [
        (
            "A bird flying at sunset over the mountains",
            ["A", "bird", "flying", "at", "sunset", "over", "the", "mountains"],
        ),
        ("  A  bird,\tflying\n(red) sunset. ", ["A", "bird", "flying", "red", "sunset"]),
        (
            "a red-winged bird's nest , 3.5 m - high!",
            ["a", "red-winged", "bird's", "nest", "3.5", "m", "high"],
        ),
        ("“Quoted” words… and — dashes", ["Quoted", "words", "and", "dashes"]),
        ("", []),
        ("... , !", []),
    ],
)
def test_split_words(prompt, words):
    assert split_words(prompt) == words


def test_order_and_duplicates_do_not_matter():
    prompt = "A glass of red wine, on a wooden table."
    assert foreground_prompt(prompt, [4, 1, 3, 1]) == "glass red wine"
    assert foreground_prompt(prompt, [8]) == "table"  # trailing "." stripped


def test_punctuation_only_pieces_take_no_index():
    assert foreground_prompt("cat - dog", [1]) == "dog"


@pytest.mark.parametrize("indices", [[], [8], [-1], [0, 99], [1.5], [True]])
def test_bad_indices(indices):
    with pytest.raises(InputError) as e:
        foreground_prompt("A bird flying at sunset over the mountains", indices)
    assert "\n" not in str(e.value)


def test_out_of_range_message_names_the_count():
    with pytest.raises(InputError, match="has 3 words"):
        foreground_prompt("one two three", [3])


def test_a_single_integer_is_one_index_and_other_shapes_are_clear_errors():
    assert foreground_prompt("A bird flying", 1) == "bird"
    for bad in ("0,1", None, 1.5):
        with pytest.raises(InputError, match="list of integers"):
            foreground_prompt("A bird flying", bad)
