"""Validation prompt libraries: the built-in default, user JSON/TXT files, and PartiPrompts categories."""

from __future__ import annotations

import json

import pytest

from clipgauge.errors import UsageError
from clipgauge.track import load_prompt_library
from clipgauge.track.prompts import DEFAULT_CATEGORIES, promptset_library, slug


def test_default_library_is_varied_and_well_formed():
    lib = load_prompt_library("default")
    assert 30 <= len(lib) <= 60
    assert len(set(lib.prompts)) == len(lib) and len(set(lib.names)) == len(lib)
    cats = {n.split("/")[0] for n in lib.names}
    assert cats == set(DEFAULT_CATEGORIES)
    for cat in DEFAULT_CATEGORIES:
        assert sum(n.startswith(cat + "/") for n in lib.names) >= 3
    counting = load_prompt_library("default:counting,text")
    assert {n.split("/")[0] for n in counting.names} == {"counting", "text"}
    assert counting.source == "default:counting,text"
    with pytest.raises(UsageError, match="unknown default-library categories: food"):
        load_prompt_library("default:food")


def test_user_json_list_mapping_and_txt(tmp_path):
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps(["a red circle", "A red circle!", "a red circle", "two yellow stars"]))
    lib = load_prompt_library(str(lst))
    assert lib.prompts == ("a red circle", "A red circle!", "two yellow stars")  # duplicates dropped
    assert lib.names == ("a-red-circle", "a-red-circle-2", "two-yellow-stars")  # unique slugs
    mapping = tmp_path / "lib.json"
    mapping.write_text(json.dumps({"dog_beach": "a dog on a beach", "cat": "a cat in a hat"}))
    lib = load_prompt_library(mapping)
    assert lib.items() == [("dog_beach", "a dog on a beach"), ("cat", "a cat in a hat")]
    assert lib.name_of("a cat in a hat") == "cat" and lib.prompt_of("cat") == "a cat in a hat"
    txt = tmp_path / "prompts.txt"
    txt.write_text("first prompt\n\n  second prompt  \n")
    assert load_prompt_library(txt).prompts == ("first prompt", "second prompt")
    assert load_prompt_library({"a": "x", "b": "y"}).names == ("a", "b")
    assert load_prompt_library(["x", "y"]).prompts == ("x", "y")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": "same", "b": "same"}', "appears twice"),
        ('{"a": 3}', "not a prompt string"),
        ("[1, 2]", "not text"),
        ('"just a string"', "must hold a list"),
        ("{not json", "not valid JSON"),
        ("[]", "is empty"),
    ],
)
def test_bad_prompt_files_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_prompt_library(path)


def test_unknown_specs(tmp_path):
    with pytest.raises(UsageError, match="prompt file not found"):
        load_prompt_library(str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="unknown prompt library"):
        load_prompt_library("imagenet")


def test_partiprompts_categories_from_a_local_copy(tmp_path):
    tsv = tmp_path / "PartiPrompts.tsv"
    rows = [("a corgi", "Animals", "Basic"), ("a red bus", "Vehicles", "Basic"), ("two cats", "Animals", "Quantity"),
            ("a corgi", "Animals", "Basic"), ("a sign that says hi", "Illustrations", "Writing & Symbols")]
    tsv.write_text("Prompt\tCategory\tChallenge\tNote\n" + "".join(f"{p}\t{c}\t{h}\t\n" for p, c, h in rows))
    lib = promptset_library("parti", ["animals"], file=tsv)
    assert lib.items() == [("parti-0000", "a corgi"), ("parti-0002", "two cats")]  # ids stable, duplicate dropped
    assert len(promptset_library("parti", file=tsv)) == 4
    with pytest.raises(UsageError, match="unknown PartiPrompts categories: Food"):
        promptset_library("parti", ["Food"], file=tsv)


def test_slug():
    assert slug("A Red Circle, to the LEFT of a star!") == "a-red-circle-to-the-left-of-a-star"
    assert slug("") == "empty"
    assert len(slug("word " * 40)) <= 48
