"""GenerationRequest validation and its versioned, lossless JSON form."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.engine.request import (
    MAX_SEED,
    REQUEST_VERSION,
    SAMPLERS,
    ConditioningItem,
    GenerationRequest,
)
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest, StudioError

WAN21 = LatentGeometry(channels=16, temporal_factor=4, spatial_factor=8)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rejected(**changes: object) -> InvalidRequest:
    request = GenerationRequest("a red fox").with_changes(**changes)
    with pytest.raises(InvalidRequest) as info:
        request.validate()
    return info.value


def test_defaults_are_valid() -> None:
    request = GenerationRequest("a red fox")
    assert request.validate() is request
    request.check_geometry(WAN21)
    assert request.duration_s == pytest.approx(17 / 8)


# --- each field: its name, the bad value, what is allowed ----------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "value", "allowed"),
    [
        ({"seed": -1}, "seed", "-1", f"0…{MAX_SEED}"),
        ({"seed": MAX_SEED + 1}, "seed", str(MAX_SEED + 1), f"0…{MAX_SEED}"),
        ({"seed": True}, "seed", "True", "0…"),
        ({"seed": 1.0}, "seed", "1.0", "0…"),
        ({"steps": 0}, "steps", "0", "1…1000"),
        ({"steps": True}, "steps", "True", "1…1000"),
        ({"guidance": math.nan}, "guidance", "nan", "0…50"),
        ({"guidance": math.inf}, "guidance", "inf", "0…50"),
        ({"guidance": True}, "guidance", "True", "0…50"),
        ({"guidance": -1.0}, "guidance", "-1.0", "0…50"),
        ({"shift": "fast"}, "shift", "'fast'", '"auto"'),
        ({"shift": 0.0}, "shift", "0.0", '"auto"'),
        ({"shift": False}, "shift", "False", '"auto"'),
        ({"width": 2.5}, "width", "2.5", "1…8192"),
        ({"height": 0}, "height", "0", "1…8192"),
        ({"frames": 0}, "frames", "0", "1…4097"),
        ({"fps": 0}, "fps", "0", "1…240"),
        ({"fps": math.nan}, "fps", "nan", "1…240"),
        ({"sampler": "ddim"}, "sampler", "'ddim'", ", ".join(SAMPLERS)),
        ({"sampler": "Euler"}, "sampler", "'Euler'", ", ".join(SAMPLERS)),
        ({"prompt": 5}, "prompt", "5", "text"),
        ({"negative_prompt": None}, "negative_prompt", "None", "text"),
        ({"model": 3}, "model", "3", "id"),
    ],
)
def test_invalid_field_names_field_value_and_allowed(
    changes: dict, field: str, value: str, allowed: str
) -> None:
    err = rejected(**changes)
    assert isinstance(err, StudioError)
    assert err.field == field
    assert err.message.startswith(f"{field}: ")
    assert value in err.message
    assert allowed in f"{err.message} {err.hint}"


@pytest.mark.parametrize(
    ("item", "field", "value", "allowed"),
    [
        (ConditioningItem("ref.png", strength=1.5), "conditioning.strength", "1.5", "0…1"),
        (ConditioningItem("ref.png", strength=-0.1), "conditioning.strength", "-0.1", "0…1"),
        (ConditioningItem("ref.png", strength=math.nan), "conditioning.strength", "nan", "0…1"),
        (ConditioningItem("ref.png", frame_index=17), "conditioning.frame_index", "17", "0…16"),
        (ConditioningItem("ref.png", frame_index=-18), "conditioning.frame_index", "-18", "−1"),
        (ConditioningItem("ref.png", frame_index=True), "conditioning.frame_index", "True", "0…16"),
        (ConditioningItem("ref.png", frame_index=1.0), "conditioning.frame_index", "1.0", "0…16"),
        (ConditioningItem("ref.png", fit="stretch"), "conditioning.fit", "'stretch'", "fill, fit"),
        (ConditioningItem(""), "conditioning.image", "''", "image"),
        (ConditioningItem(None), "conditioning.image", "None", "image"),  # type: ignore[arg-type]
    ],
)
def test_invalid_conditioning_item(
    item: ConditioningItem, field: str, value: str, allowed: str
) -> None:
    err = rejected(conditioning=(item,))
    assert err.field == field
    assert value in err.message
    assert allowed in f"{err.message} {err.hint}"


def test_conditioning_must_hold_items() -> None:
    err = rejected(conditioning=("ref.png",))
    assert err.field == "conditioning" and "'ref.png'" in err.message and err.hint


def test_conditioning_frame_index_first_and_last_allowed() -> None:
    items = (ConditioningItem("a.png", 0), ConditioningItem("b.png", -1, 0.5, "fit"),
             ConditioningItem("c.png", 16, 0.0), ConditioningItem("d.png", -17))  # fmt: skip
    GenerationRequest("x", conditioning=items).validate()


@pytest.mark.parametrize(
    ("changes", "field", "choices"),
    [
        ({"frames": 18}, "frames", "17 or 21"),
        ({"frames": 16}, "frames", "13 or 17"),
        ({"width": 130}, "width", "128 or 144"),
        ({"height": 100}, "height", "96 or 112"),
    ],
)
def test_geometry_names_nearest_valid_values(changes: dict, field: str, choices: str) -> None:
    request = GenerationRequest("x").with_changes(**changes).validate()
    with pytest.raises(InvalidRequest) as info:
        request.check_geometry(WAN21)
    assert info.value.field == field
    assert str(changes[field]) in info.value.message
    assert choices in info.value.hint


def test_a_list_of_items_becomes_a_tuple() -> None:
    as_list = [ConditioningItem("a.png")]
    request = GenerationRequest("x", conditioning=as_list)  # type: ignore[arg-type]
    assert request.conditioning == (ConditioningItem("a.png"),)
    assert hash(request) == hash(GenerationRequest("x", conditioning=(ConditioningItem("a.png"),)))


# --- JSON ------------------------------------------------------------------------------------

#: The temporal stride of every shipped family's VAE: valid frame counts are 1 + 4·k.
STRIDE = 4


@st.composite
def _items(draw: st.DrawFn, frames: int) -> ConditioningItem:
    return ConditioningItem(
        image=draw(st.text(min_size=1, max_size=30)),
        frame_index=draw(st.integers(-frames, frames - 1)),
        strength=draw(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1]))),
        fit=draw(st.sampled_from(["fill", "fit"])),
    )


@st.composite
def _requests(draw: st.DrawFn) -> GenerationRequest:
    """Valid requests of every shape: frame counts 1 + 4·k (the models' stride), sizes on the
    16-pixel grid, reference frames anywhere in the clip."""
    frames = 1 + STRIDE * draw(st.integers(0, 64))
    return GenerationRequest(
        prompt=draw(st.text(max_size=80)),
        negative_prompt=draw(st.text(max_size=40)),
        seed=draw(st.integers(0, MAX_SEED)),
        steps=draw(st.integers(1, 1000)),
        guidance=draw(st.one_of(st.floats(0.0, 50.0), st.integers(0, 50))),
        shift=draw(st.one_of(st.just("auto"), st.floats(0.0, 100.0, exclude_min=True))),
        width=16 * draw(st.integers(1, 512)),
        height=16 * draw(st.integers(1, 512)),
        frames=frames,
        fps=draw(st.floats(1.0, 240.0)),
        sampler=draw(st.sampled_from(SAMPLERS)),
        conditioning=tuple(draw(st.lists(_items(frames), max_size=3))),
        model=draw(st.text(max_size=20)),
    )


requests = _requests()


@FAST
@given(requests)
def test_drawn_requests_are_valid_for_the_models_geometry(request: GenerationRequest) -> None:
    request.validate()
    request.check_geometry(LatentGeometry(channels=16, temporal_factor=STRIDE, spatial_factor=8))


@FAST
@given(requests)
def test_json_round_trip_is_lossless(request: GenerationRequest) -> None:
    request.validate()
    text = request.to_json()
    back = GenerationRequest.from_json(text)
    assert back == request
    assert back.to_json() == text
    assert json.loads(text)["version"] == REQUEST_VERSION
    # Floats keep their exact bits (json writes the shortest repr that round-trips).
    for name in ("guidance", "fps"):
        assert repr(getattr(back, name)) == repr(getattr(request, name)) or (
            getattr(back, name) == getattr(request, name)
        )


def test_json_round_trip_of_a_full_request() -> None:
    request = GenerationRequest(
        "ein Fuchs im Schnee — 雪の中の狐", negative_prompt="blur", seed=MAX_SEED, steps=50,
        guidance=6.5, shift=3.0, width=832, height=480, frames=81, fps=16.0, sampler="stochastic",
        conditioning=(ConditioningItem("/tmp/a b.png", 0, 1.0),
                      ConditioningItem("z.png", -1, 0.4, "fit")),
        model="wan2.1-t2v-1.3b",
    )  # fmt: skip
    data = json.loads(request.to_json())
    second = {"image": "z.png", "frame_index": -1, "strength": 0.4, "fit": "fit"}
    assert data["conditioning"][1] == second
    assert "雪の中の狐" in request.to_json()  # not escaped: readable in the file's metadata
    assert GenerationRequest.from_json(request.to_json()) == request
    assert GenerationRequest.from_dict(request.to_dict()) == request


def test_integer_shift_from_json_becomes_float() -> None:
    back = GenerationRequest.from_json('{"prompt": "x", "shift": 3}')
    assert back.shift == 3.0 and type(back.shift) is float


@pytest.mark.parametrize("version", [0, 2, "1", 1.5, True, None])
def test_unknown_version_rejected(version: object) -> None:
    data = GenerationRequest("x").to_dict() | {"version": version}
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.from_dict(data)
    assert info.value.field == "version"
    assert repr(version) in info.value.message
    assert str(REQUEST_VERSION) in info.value.hint


def test_missing_version_reads_as_current() -> None:
    data = GenerationRequest("x").to_dict()
    del data["version"]
    assert GenerationRequest.from_dict(data) == GenerationRequest("x")


def test_unknown_field_rejected_with_its_name() -> None:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.from_dict({"prompt": "x", "colour": "red", "cfg": 3})
    assert "colour" in info.value.message and "cfg" in info.value.message
    assert "prompt" in info.value.hint  # the known fields are listed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "conditioning": {}}, "conditioning"),
        ({"prompt": "x", "conditioning": [{"frame_index": 0}]}, "conditioning.image"),
        ({"prompt": "x", "conditioning": [{"image": "a", "weight": 1}]}, "conditioning"),
        ({"prompt": "x", "conditioning": ["a.png"]}, "conditioning"),
        ({"prompt": "x", "conditioning": [{"image": "a", "strength": "1"}]},
         "conditioning.strength"),
        ({"prompt": "x", "steps": 1e400}, "steps"),
        ({"prompt": "x", "seed": "7"}, "seed"),
    ],
)
def test_from_dict_rejects_bad_shapes(data: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.from_dict(data)
    assert info.value.field == field


@pytest.mark.parametrize(
    "text",
    ["", "{", "{'prompt': 'x'}", '{"prompt": "x",}', "[1, 2]", '"x"', "null", "NaN",
     '{"prompt": "x", "guidance": NaN}', '{"prompt": "x", "seed": ' + "9" * 5000 + "}",
     "[" * 50_000],
)  # fmt: skip
def test_from_json_malformed_raises_invalid_request(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.from_json(text)
    assert info.value.field in {"request", "guidance", "seed"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(
    ["prompt", "negative_prompt", "seed", "steps", "guidance", "shift", "width", "height",
     "frames", "fps", "sampler", "conditioning", "model", "version"]
)  # fmt: skip


@FAST
@given(st.dictionaries(field_names, json_values, max_size=6), st.text(max_size=40))
def test_only_invalid_request_escapes_from_json(data: dict, noise: str) -> None:
    """Arbitrary JSON-shaped input either parses to a valid request or raises InvalidRequest."""
    for text in (json.dumps(data), noise, json.dumps({"prompt": "x", **data})):
        try:
            request = GenerationRequest.from_json(text)
        except InvalidRequest as err:
            assert err.field and err.message
        else:
            assert request.validate() is request
