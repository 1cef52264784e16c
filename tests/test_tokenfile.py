"""Token files: bit packing, the .vqt layout, the plain formats, and every way a file can be bad."""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqaudio.errors import TokenFileError, VQAudioError
from vqaudio.tokenfile import (
    FORMAT_VERSION,
    MAGIC,
    UNKNOWN_MODEL_ID,
    TokenHeader,
    assume_model,
    bits_per_code,
    check_compatible,
    load_codes,
    pack_codes,
    read_tokens,
    save_codes,
    unpack_codes,
    write_tokens,
)

CHECKSUM = "0123456789abcdef" * 4  # a full sha256 hex digest


def make_header(codebook_size: int = 1024, k: int = 3, f: int = 50, **changes: object) -> TokenHeader:
    header = TokenHeader(
        model_id="speech-16k",
        model_checksum=CHECKSUM,
        sample_rate=16000,
        frame_rate=50.0,
        codebook_size=codebook_size,
        num_codebooks=k,
        num_frames=f,
        original_length=max(0, f * 320 - 17),
        original_sample_rate=44100,
        original_channels=2,
        channel_handling="downmix",
        extra={"note": "tëst", "nested": {"a": [1, 2]}},
    )
    return replace(header, **changes)  # type: ignore[arg-type]


def make_codes(codebook_size: int = 1024, k: int = 3, f: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, codebook_size, size=(k, f), dtype=np.int64)


def craft_vqt(
    header: dict[str, object] | bytes,
    payload: bytes,
    *,
    magic: bytes = MAGIC,
    version: int = 1,
    crc: int | None = None,
) -> bytes:
    """A .vqt built by hand from the documented layout, with a valid CRC unless ``crc`` is given."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    body = magic + struct.pack("<BI", version, len(header_bytes)) + header_bytes + payload
    return body + struct.pack("<I", zlib.crc32(body) if crc is None else crc)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "bits"),
    [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9), (1000, 10), (1024, 10), (1025, 11)],
)
def test_bits_per_code(size: int, bits: int) -> None:
    assert bits_per_code(size) == bits
    assert bits == max(1, math.ceil(math.log2(size)))


def test_bits_per_code_rejects_empty_codebook() -> None:
    with pytest.raises(ValueError):
        bits_per_code(0)


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_unpack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    for k, f in [(1, 1), (3, 7), (2, 33), (4, 0)]:
        codes = rng.integers(0, 2**bits, size=(k, f), dtype=np.int64)
        data = pack_codes(codes, bits)
        assert len(data) == math.ceil(k * f * bits / 8)
        out = unpack_codes(data, bits, k, f)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, codes)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 16),
    k=st.integers(1, 4),
    f=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_unpack_property(bits: int, k: int, f: int, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 2**bits, size=(k, f))
    np.testing.assert_array_equal(unpack_codes(pack_codes(codes, bits), bits, k, f), codes)


def test_pack_is_row_major_msb_first_and_zero_padded() -> None:
    # 2-bit codes 1, 0, 3 -> 01 00 11 + 00 padding.
    assert pack_codes(np.array([[1, 0, 3]]), 2) == bytes([0b01001100])
    # Row-major: codebook 0 then codebook 1; 3-bit codes 5 | 2 -> 101 010 + 00.
    assert pack_codes(np.array([[5], [2]]), 3) == bytes([0b10101000])
    # 10-bit code 1023 then 1: 11111111 11 000000 0001 + 0000.
    assert pack_codes(np.array([[1023, 1]]), 10) == bytes([0xFF, 0xC0, 0x10])


def test_payload_size_for_1024_codebook() -> None:
    codes = make_codes(1024, 3, 50)
    assert len(pack_codes(codes, bits_per_code(1024))) == math.ceil(3 * 50 * 10 / 8) == 188


def test_pack_rejects_bad_codes() -> None:
    with pytest.raises(ValueError):
        pack_codes(np.array([[4]]), 2)
    with pytest.raises(ValueError):
        pack_codes(np.array([[-1]]), 2)
    with pytest.raises(ValueError):
        pack_codes(np.array([1, 2]), 2)
    with pytest.raises(ValueError):
        pack_codes(np.array([[1.0]]), 2)


def test_unpack_rejects_wrong_length_and_dirty_padding() -> None:
    with pytest.raises(ValueError):
        unpack_codes(b"\x00\x00", 2, 1, 3)
    with pytest.raises(ValueError):
        unpack_codes(bytes([0b01001101]), 2, 1, 3)  # last padding bit set


# --------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------


def test_header_json_round_trip_ignores_unknown_keys() -> None:
    header = make_header()
    d = header.to_json()
    assert json.loads(json.dumps(d)) == d
    assert TokenHeader.from_json({**d, "added_in_a_later_version": [1, 2]}) == header


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sample_rate", "16000"),
        ("num_frames", True),
        ("num_codebooks", 2.0),
        ("frame_rate", "50"),
        ("model_id", 7),
        ("extra", [1]),
        ("codebook_size", 1),
        ("num_codebooks", 0),
        ("sample_rate", 0),
        ("frame_rate", 0.0),
        ("channel_handling", "stereo"),
    ],
)
def test_header_from_json_refuses_ill_typed_values(key: str, value: object) -> None:
    with pytest.raises(TokenFileError, match=key if key != "channel_handling" else "upgrade"):
        TokenHeader.from_json({**make_header().to_json(), key: value})


def test_header_from_json_refuses_missing_key() -> None:
    d = make_header().to_json()
    del d["original_length"]
    with pytest.raises(TokenFileError, match="original_length"):
        TokenHeader.from_json(d)


@pytest.mark.parametrize(
    ("frames", "length", "ok"),
    [
        (50, 50 * 320, True),  # exactly ceil(length / hop)
        (50, 49 * 320 + 1, True),
        (51, 50 * 320, True),  # one frame more than the length needs is tolerated
        (1, 1, True),
        (0, 0, True),
        (52, 50 * 320, False),
        (49, 50 * 320, False),  # more audio than the codes can make: corrupt, not one frame of slack
        (50, 50 * 320 + 1, False),
        (48, 50 * 320, False),
        (50, 10**12, False),  # hours of audio claimed over a second of codes
        (0, 50 * 320, False),
    ],
)
def test_header_length_must_agree_with_frames(frames: int, length: int, ok: bool, tmp_path: Path) -> None:
    d = {**make_header(f=frames).to_json(), "original_length": length}
    if ok:
        assert TokenHeader.from_json(d).original_length == length
        return
    with pytest.raises(TokenFileError, match="header fields disagree"):
        TokenHeader.from_json(d)
    # A file with such a header and a valid CRC is refused on read, and no writer makes one.
    bad = tmp_path / "bad.vqt"
    bad.write_bytes(craft_vqt(d, pack_codes(make_codes(f=frames), bits_per_code(1024))))
    with pytest.raises(TokenFileError, match="header fields disagree"):
        read_tokens(bad)
    header = replace(make_header(f=frames), original_length=length)
    with pytest.raises(TokenFileError, match="header fields disagree"):
        write_tokens(tmp_path / "never.vqt", make_codes(f=frames), header)
    assert not (tmp_path / "never.vqt").exists()


# --------------------------------------------------------------------------------------------------
# .vqt
# --------------------------------------------------------------------------------------------------


def test_vqt_round_trip(tmp_path: Path) -> None:
    header, codes = make_header(), make_codes()
    path = tmp_path / "tokens.vqt"
    write_tokens(path, codes, header)
    tf = read_tokens(path)
    assert tf.header == header
    assert tf.codes.dtype == np.int64
    np.testing.assert_array_equal(tf.codes, codes)
    assert listing(tmp_path) == ["tokens.vqt"]


def test_vqt_byte_layout_matches_the_documentation(tmp_path: Path) -> None:
    header, codes = make_header(), make_codes()
    path = tmp_path / "tokens.vqt"
    write_tokens(path, codes.astype(np.int16), header)
    data = path.read_bytes()
    assert data[:4] == b"VQAT"
    assert data[4] == 1
    (header_len,) = struct.unpack("<I", data[5:9])
    assert TokenHeader.from_json(json.loads(data[9 : 9 + header_len].decode("utf-8"))) == header
    assert data[9 + header_len : -4] == pack_codes(codes, 10)
    assert len(data) == 9 + header_len + 188 + 4
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


@pytest.mark.parametrize(("size", "k", "f"), [(2, 1, 1), (3, 2, 9), (1000, 4, 0), (65536, 2, 5)])
def test_vqt_round_trip_shapes(tmp_path: Path, size: int, k: int, f: int) -> None:
    header, codes = make_header(size, k, f), make_codes(size, k, f, seed=size)
    write_tokens(tmp_path / "t.vqt", codes, header)
    np.testing.assert_array_equal(read_tokens(tmp_path / "t.vqt").codes, codes)


@pytest.fixture()
def small_vqt(tmp_path: Path) -> Path:
    path = tmp_path / "small.vqt"
    header = make_header(16, 2, 5, extra={})
    write_tokens(path, make_codes(16, 2, 5), header)
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="nope.vqt: no such token file"):
        read_tokens(tmp_path / "nope.vqt")
    with pytest.raises(TokenFileError, match="no such token file"):
        load_codes(tmp_path / "nope.npy")


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(TokenFileError, match=r"speech.wav is not a vqaudio token file"):
        read_tokens(path)


def test_future_version_is_refused_with_upgrade_message(tmp_path: Path) -> None:
    path = tmp_path / "new.vqt"
    # A later file may look like anything after the version byte; the reader must stop there.
    path.write_bytes(MAGIC + bytes([FORMAT_VERSION + 1]) + b"whatever a later layout holds")
    with pytest.raises(TokenFileError) as info:
        read_tokens(path)
    assert str(info.value) == (
        f"{path} was made by a newer vqaudio (format v{FORMAT_VERSION + 1}); "
        f"this vqaudio reads up to v{FORMAT_VERSION} -- upgrade"
    )


def test_version_zero_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "zero.vqt"
    path.write_bytes(craft_vqt(make_header(16, 1, 1).to_json(), b"\x00", version=0))
    with pytest.raises(TokenFileError, match="invalid token format version 0"):
        read_tokens(path)


def test_truncation_at_every_offset_is_detected(small_vqt: Path, tmp_path: Path) -> None:
    data = small_vqt.read_bytes()
    cut_path = tmp_path / "cut.vqt"
    for cut in range(len(data)):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(TokenFileError, match="truncated|empty") as info:
            read_tokens(cut_path)
        assert "cut.vqt" in str(info.value)
        assert "\n" not in str(info.value)


def test_every_flipped_byte_is_detected(small_vqt: Path, tmp_path: Path) -> None:
    data = small_vqt.read_bytes()
    bad_path = tmp_path / "bad.vqt"
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        bad_path.write_bytes(bytes(bad))
        with pytest.raises(TokenFileError, match="bad.vqt"):
            read_tokens(bad_path)


def test_corrupt_payload_reports_crc_mismatch(small_vqt: Path) -> None:
    data = bytearray(small_vqt.read_bytes())
    data[-5] ^= 0x01  # last payload byte
    small_vqt.write_bytes(bytes(data))
    with pytest.raises(TokenFileError, match="corrupt: CRC32 mismatch"):
        read_tokens(small_vqt)


def test_corrupt_crc_field(small_vqt: Path) -> None:
    data = bytearray(small_vqt.read_bytes())
    data[-1] ^= 0xFF
    small_vqt.write_bytes(bytes(data))
    with pytest.raises(TokenFileError, match="CRC32 mismatch"):
        read_tokens(small_vqt)


def test_invalid_header_json(tmp_path: Path) -> None:
    path = tmp_path / "h.vqt"
    path.write_bytes(craft_vqt(b'{"model_id": "speech-16k",', b""))
    with pytest.raises(TokenFileError, match="header is not valid UTF-8 JSON"):
        read_tokens(path)
    path.write_bytes(craft_vqt(b"\xff\xfe", b""))
    with pytest.raises(TokenFileError, match="h.vqt: header is not valid UTF-8 JSON"):
        read_tokens(path)
    path.write_bytes(craft_vqt(b"[1, 2]", b""))
    with pytest.raises(TokenFileError, match="header must be a JSON object"):
        read_tokens(path)


def test_header_with_wrong_types_in_file(tmp_path: Path) -> None:
    path = tmp_path / "types.vqt"
    d = {**make_header(16, 1, 2).to_json(), "num_frames": "2"}
    path.write_bytes(craft_vqt(d, pack_codes(np.zeros((1, 2), dtype=np.int64), 4)))
    with pytest.raises(TokenFileError, match="types.vqt: header 'num_frames' must be an integer"):
        read_tokens(path)


def test_codes_beyond_codebook_size(tmp_path: Path) -> None:
    # 1000 entries need 10 bits, which can also hold 1000..1023: those must be refused.
    path = tmp_path / "range.vqt"
    header = make_header(1000, 1, 3)
    path.write_bytes(craft_vqt(header.to_json(), pack_codes(np.array([[5, 1010, 7]]), 10)))
    with pytest.raises(TokenFileError, match="code 1010 at codebook 0, frame 1 is outside 0..999"):
        read_tokens(path)


@pytest.mark.parametrize("delta", [1, -1])
def test_payload_length_mismatch(tmp_path: Path, delta: int) -> None:
    path = tmp_path / "len.vqt"
    header = make_header(16, 2, 4)  # 2 * 4 * 4 bits = 4 bytes of payload
    payload = bytes(4 + delta)
    path.write_bytes(craft_vqt(header.to_json(), payload))
    with pytest.raises(TokenFileError, match="len.vqt: payload is .* bytes but 2x4 codes of 4 bits need 4"):
        read_tokens(path)


def test_nonzero_padding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pad.vqt"
    header = make_header(8, 1, 1)  # one 3-bit code in one byte: 5 padding bits
    path.write_bytes(craft_vqt(header.to_json(), bytes([0b00100001])))
    with pytest.raises(TokenFileError, match="padding"):
        read_tokens(path)


def test_unknown_header_keys_are_ignored_by_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "more.vqt"
    header, codes = make_header(16, 2, 3), make_codes(16, 2, 3)
    d = {**header.to_json(), "from_the_future": {"x": 1}}
    path.write_bytes(craft_vqt(d, pack_codes(codes, 4)))
    tf = read_tokens(path)
    assert tf.header == header
    np.testing.assert_array_equal(tf.codes, codes)


# --------------------------------------------------------------------------------------------------
# Writing: validation, overwrite refusal, atomicity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["vqt", "npy", "txt", "json"])
@pytest.mark.parametrize(
    ("codes", "match"),
    [
        (np.zeros((2, 3, 1), dtype=np.int64), "2-D"),
        (np.zeros((2, 3), dtype=np.float32), "integers"),
        (np.zeros((2, 3), dtype=bool), "integers"),
        (np.array([[0, 1, 2], [3, -1, 5]]), "code -1 at codebook 1, frame 1"),
        (np.array([[0, 1, 2], [3, 4, 16]]), "code 16 at codebook 1, frame 2 is outside 0..15"),
        (np.zeros((3, 2), dtype=np.int64), "shape"),
    ],
)
def test_writers_validate_codes(tmp_path: Path, fmt: str, codes: np.ndarray, match: str) -> None:
    path = tmp_path / f"out.{fmt}"
    with pytest.raises(TokenFileError, match=match) as info:
        save_codes(path, codes, make_header(16, 2, 3), fmt=fmt)
    assert "out." in str(info.value)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", ["vqt", "npy", "txt", "json"])
def test_overwrite_is_refused_and_keeps_old_bytes(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"tokens.{fmt}"
    header = make_header(16, 2, 3)
    save_codes(path, make_codes(16, 2, 3, seed=1), header, fmt=fmt)
    before = {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)}
    with pytest.raises(TokenFileError, match="already exists; pass --force"):
        save_codes(path, make_codes(16, 2, 3, seed=2), header, fmt=fmt)
    assert {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)} == before

    save_codes(path, make_codes(16, 2, 3, seed=2), header, fmt=fmt, overwrite=True)
    np.testing.assert_array_equal(load_codes(path).codes, make_codes(16, 2, 3, seed=2))
    assert listing(tmp_path) == sorted(before)


def test_stale_sidecar_also_blocks_overwrite(tmp_path: Path) -> None:
    (tmp_path / "tokens.npy.json").write_text("{}")
    with pytest.raises(TokenFileError, match="tokens.npy.json already exists"):
        save_codes(tmp_path / "tokens.npy", make_codes(16, 2, 3), make_header(16, 2, 3), fmt="npy")
    assert listing(tmp_path) == ["tokens.npy.json"]


def test_failed_write_leaves_no_temp_file_and_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokens.npy"
    header = make_header(16, 2, 3)
    save_codes(path, make_codes(16, 2, 3), header, fmt="npy")
    before = path.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(TokenFileError, match="cannot write .*tokens.npy: No space left on device"):
        save_codes(path, make_codes(16, 2, 3, seed=9), header, fmt="npy", overwrite=True)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["tokens.npy", "tokens.npy.json"]


def test_writing_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        write_tokens(tmp_path / "no" / "t.vqt", make_codes(16, 2, 3), make_header(16, 2, 3))


def test_unserialisable_extra_is_refused_before_writing(tmp_path: Path) -> None:
    header = make_header(16, 2, 3, extra={"bad": float("nan")})
    for fmt in ("vqt", "npy", "json"):
        with pytest.raises(TokenFileError, match="JSON-serialisable"):
            save_codes(tmp_path / f"t.{fmt}", make_codes(16, 2, 3), header, fmt=fmt)
    assert listing(tmp_path) == []


def test_unknown_save_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown token format"):
        save_codes(tmp_path / "t.bin", make_codes(16, 2, 3), make_header(16, 2, 3), fmt="bin")


# --------------------------------------------------------------------------------------------------
# .npy / .txt / .json
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["vqt", "npy", "txt", "json"])
def test_save_load_round_trip(tmp_path: Path, fmt: str) -> None:
    header, codes = make_header(), make_codes()
    path = tmp_path / f"tokens.{fmt}"
    save_codes(path, codes.astype(np.uint16), header, fmt=fmt)
    tf = load_codes(path)
    assert tf.header == header
    assert tf.codes.dtype == np.int64
    np.testing.assert_array_equal(tf.codes, codes)
    expected = [path.name] if fmt in ("vqt", "json") else [path.name, path.name + ".json"]
    assert listing(tmp_path) == sorted(expected)


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "codes.bin"
    save_codes(path, make_codes(16, 2, 3), make_header(16, 2, 3), fmt="txt")
    assert listing(tmp_path) == ["codes.bin", "codes.bin.json"]
    np.testing.assert_array_equal(load_codes(path, fmt="txt").codes, make_codes(16, 2, 3))
    with pytest.raises(TokenFileError, match="cannot tell the token format of .*codes.bin"):
        load_codes(path)


def test_plain_files_are_what_they_claim(tmp_path: Path) -> None:
    codes = np.array([[1, 2, 3], [40, 50, 60]])
    header = make_header(64, 2, 3)
    save_codes(tmp_path / "t.txt", codes, header, fmt="txt")
    save_codes(tmp_path / "t.npy", codes, header, fmt="npy")
    save_codes(tmp_path / "t.json", codes, header, fmt="json")
    assert (tmp_path / "t.txt").read_text() == "1 2 3\n40 50 60\n"
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy", allow_pickle=False), codes)
    obj = json.loads((tmp_path / "t.json").read_text())
    assert obj["codes"] == codes.tolist()
    assert obj["header"] == header.to_json()
    assert json.loads((tmp_path / "t.npy.json").read_text())["header"] == header.to_json()


@pytest.mark.parametrize("fmt", ["npy", "txt"])
def test_codes_without_sidecar_get_an_unknown_header(tmp_path: Path, fmt: str) -> None:
    codes = np.array([[3, 0, 7], [1, 1, 2]])
    path = tmp_path / f"bare.{fmt}"
    if fmt == "npy":
        np.save(path, codes)
    else:
        path.write_text("3 0 7\n1 1 2\n")
    tf = load_codes(path)
    assert tf.header.model_id == UNKNOWN_MODEL_ID
    assert tf.header.is_unknown
    assert (tf.header.num_codebooks, tf.header.num_frames, tf.header.codebook_size) == (2, 3, 8)
    np.testing.assert_array_equal(tf.codes, codes)

    with pytest.raises(TokenFileError, match=r"bare\.\w+ does not say which model made it.*--model"):
        check_compatible(tf.header, "speech-16k", CHECKSUM, 1024, 8, source=path)

    chosen = assume_model(tf.header, model_id="speech-16k", model_checksum=CHECKSUM, sample_rate=16000, frame_rate=50.0)
    check_compatible(chosen, "speech-16k", CHECKSUM, 1024, 8, source=path)
    assert chosen.original_length == 3 * 320
    # Codes the chosen model cannot look up are still refused.
    with pytest.raises(TokenFileError, match="codebook size 8 but model speech-16k has only 4"):
        check_compatible(chosen, "speech-16k", CHECKSUM, 4, 8, source=path)
    # An unknown header survives a round trip through .vqt, and stays unknown.
    write_tokens(tmp_path / "conv.vqt", tf.codes, tf.header)
    assert read_tokens(tmp_path / "conv.vqt").header == tf.header


def test_assume_model_refuses_real_headers() -> None:
    with pytest.raises(ValueError):
        assume_model(make_header(), model_id="m", model_checksum="", sample_rate=1, frame_rate=1.0)


def test_npy_refuses_pickles_and_bad_arrays(tmp_path: Path) -> None:
    path = tmp_path / "evil.npy"
    np.save(path, np.array([[1, "x"]], dtype=object), allow_pickle=True)
    with pytest.raises(TokenFileError, match="evil.npy is not a plain .npy integer array"):
        load_codes(path)
    np.save(path, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TokenFileError, match="2-D integer array"):
        load_codes(path)
    np.save(path, np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(TokenFileError, match="2-D integer array"):
        load_codes(path)
    np.save(path, np.array([[1, -2]]))
    with pytest.raises(TokenFileError, match="negative"):
        load_codes(path)
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(TokenFileError, match="evil.npy"):
        load_codes(path)


def test_npy_sidecar_must_match_codes(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    save_codes(path, make_codes(16, 2, 3), make_header(16, 2, 3), fmt="npy")
    np.save(path, make_codes(16, 2, 4))
    with pytest.raises(TokenFileError, match=r"t.npy holds codes of shape \[2, 4\] but its header says \[2, 3\]"):
        load_codes(path)
    np.save(path, np.full((2, 3), 20))
    with pytest.raises(TokenFileError, match="code 20 .* outside 0..15"):
        load_codes(path)
    (tmp_path / "t.npy.json").write_text("{not json")
    with pytest.raises(TokenFileError, match="t.npy.json is not valid JSON"):
        load_codes(path)
    (tmp_path / "t.npy.json").write_text(json.dumps({"format_version": 3, "header": {}}))
    with pytest.raises(TokenFileError, match=r"newer vqaudio \(format v3\)"):
        load_codes(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2 3\n4 5\n", "line 2 has 2 codes, line 1 has 3"),
        ("1 2 3\n4 5 6\n7 8 9 10\n", "line 3 has 4 codes"),
        ("1 2 3\n4 x 6\n", "line 2: 'x' is not a non-negative integer"),
        ("1 2.5 3\n", "line 1: '2.5' is not a non-negative integer"),
        ("1 2 3\n4 -5 6\n", "line 2: code -5 is negative"),
        ("1 +2 3\n", "line 1: '\\+2' is not"),
        ("1 1_000\n", "line 1: '1_000' is not"),
        ("", "holds no codes"),
    ],
)
def test_txt_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "codes.txt"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=match) as info:
        load_codes(path)
    assert "codes.txt" in str(info.value)


def test_txt_is_lenient_about_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "codes.txt"
    path.write_bytes(b"1  2\t3\r\n4 5 6  \n\n\n")
    np.testing.assert_array_equal(load_codes(path).codes, [[1, 2, 3], [4, 5, 6]])


def test_txt_with_zero_frames_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    save_codes(path, np.zeros((3, 0), dtype=np.int64), make_header(16, 3, 0), fmt="txt")
    assert path.read_text() == "\n\n\n"
    assert load_codes(path).codes.shape == (3, 0)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([1, 2], "expected a JSON object"),
        ({"codes": [[1]]}, "has no 'header'"),
        ({"header": "HEADER", "codes": [[1, 2], [3]]}, "codes row 1 has 1 codes, row 0 has 2"),
        ({"header": "HEADER", "codes": [[1, 2], [3, True]]}, "row 1, frame 1 is True, not an integer"),
        ({"header": "HEADER", "codes": [[1, 2], [3, 4.0]]}, "row 1, frame 1 is 4.0, not an integer"),
        ({"header": "HEADER", "codes": [[1, 2], [3, -4]]}, "row 1, frame 1 is negative"),
        ({"header": "HEADER", "codes": [1, 2]}, "list of lists"),
        ({"header": "HEADER", "codes": [[1, 2], [3, 2**70]]}, "too large"),
        ({"header": "HEADER", "codes": [[1, 2], [3, 16]]}, "code 16 at codebook 1, frame 1"),
        ({"header": "HEADER", "codes": [[1, 2, 3], [4, 5, 6]]}, "shape"),
        ({"format_version": 9, "header": "HEADER", "codes": [[1, 2], [3, 4]]}, "newer vqaudio"),
        ({"header": {"model_id": "x"}, "codes": [[1]]}, "header is missing"),
    ],
)
def test_json_errors(tmp_path: Path, obj: object, match: str) -> None:
    if isinstance(obj, dict) and obj.get("header") == "HEADER":
        obj = {**obj, "header": make_header(16, 2, 2).to_json()}
    path = tmp_path / "codes.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(TokenFileError, match=match) as info:
        load_codes(path)
    assert "codes.json" in str(info.value)


def test_loading_a_sidecar_by_mistake_gives_a_hint(tmp_path: Path) -> None:
    save_codes(tmp_path / "t.npy", make_codes(16, 2, 3), make_header(16, 2, 3), fmt="npy")
    with pytest.raises(TokenFileError, match=r"has no 'codes'; is it a sidecar\? load .*t.npy instead"):
        load_codes(tmp_path / "t.npy.json")


# --------------------------------------------------------------------------------------------------
# Compatibility
# --------------------------------------------------------------------------------------------------


def test_check_compatible_accepts_the_same_model() -> None:
    header = make_header()
    check_compatible(header, "speech-16k", CHECKSUM, 1024, 3)
    # Fewer codebooks than the model: a lower bitrate, decodable.
    check_compatible(header, "speech-16k", CHECKSUM, 1024, 8)
    # A stored 16-char prefix matches the full digest, and the other way round.
    check_compatible(replace(header, model_checksum=CHECKSUM[:16]), "speech-16k", CHECKSUM, 1024, 3)
    check_compatible(header, "speech-16k", CHECKSUM[:16].upper(), 1024, 3)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ("music-24k", CHECKSUM, 1024, 3),
            r"tokens.vqt was made by model speech-16k \(checksum 0123456789abcdef\), not music-24k",
        ),
        (("speech-16k", "f" * 64, 1024, 3), "checksum 0123456789abcdef, but the loaded speech-16k has"),
        (("speech-16k", CHECKSUM[:4], 1024, 3), "checksum"),  # too short a prefix to trust
        (("speech-16k", "", 1024, 3), "checksum"),
        (("speech-16k", CHECKSUM, 1024, 2), "has 3 codebooks but model speech-16k has only 2"),
        (("speech-16k", CHECKSUM, 512, 3), "codebook size 1024 but model speech-16k has only 512"),
    ],
)
def test_check_compatible_refuses(args: tuple[str, str, int, int], match: str) -> None:
    with pytest.raises(TokenFileError, match=match):
        check_compatible(make_header(), *args, source="tokens.vqt")


CODES = "fedcba9876543210" * 4


def test_codes_checksum_decides_when_both_sides_have_one() -> None:
    """A decoder- or vocoder-only release changes the weights checksum but not the codes checksum."""
    header = make_header(codes_checksum=CODES)
    check_compatible(header, "speech-16k", "f" * 64, 1024, 3, codes_checksum=CODES[:16])
    with pytest.raises(TokenFileError, match=r"codes checksum fedcba9876543210, .* its encoder or codebooks differ"):
        check_compatible(header, "speech-16k", CHECKSUM, 1024, 3, codes_checksum="0" * 64, source="t.vqt")
    # A file from before codes checksums, or a caller that does not know its own: the weights must match.
    with pytest.raises(TokenFileError, match="checksum 0123456789abcdef, but the loaded"):
        check_compatible(make_header(), "speech-16k", "f" * 64, 1024, 3, codes_checksum=CODES)
    with pytest.raises(TokenFileError, match="checksum 0123456789abcdef, but the loaded"):
        check_compatible(header, "speech-16k", "f" * 64, 1024, 3)


def test_codes_checksum_is_optional_in_the_header(tmp_path: Path) -> None:
    old = make_header()
    assert "codes_checksum" not in old.to_json()  # an older file's header writes back unchanged
    assert TokenHeader.from_json(old.to_json()) == old
    new = make_header(codes_checksum=CODES)
    codes = np.zeros((3, 50), dtype=np.int64)
    for fmt in ("vqt", "npy", "json"):
        path = tmp_path / f"t.{fmt}"
        save_codes(path, codes, new, fmt=fmt)
        assert load_codes(path).header == new
    with pytest.raises(TokenFileError, match="'codes_checksum' must be a string"):
        TokenHeader.from_json({**new.to_json(), "codes_checksum": 7})


def test_errors_are_vqaudio_errors_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.vqt"
    path.write_bytes(b"garbage\n\n")
    with pytest.raises(VQAudioError) as info:
        read_tokens(path)
    assert "\n" not in str(info.value)


def test_written_file_permissions_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_tokens(tmp_path / "t.vqt", make_codes(16, 2, 3), make_header(16, 2, 3))
    finally:
        os.umask(old)
    assert (tmp_path / "t.vqt").stat().st_mode & 0o777 == 0o644
