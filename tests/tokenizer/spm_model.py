"""Minimal reader/writer of SentencePiece ModelProto files (protobuf wire format), for
the tokenizer oracle suite: Debian's python3-sentencepiece ships without the protobuf
module, so model variants are made here by editing fields directly.

Field numbers (sentencepiece_model.proto): ModelProto 1 pieces, 2 trainer_spec,
3 normalizer_spec; SentencePiece 1 piece, 2 score, 3 type; TrainerSpec 35 byte_fallback;
NormalizerSpec 3 add_dummy_prefix, 4 remove_extra_whitespaces, 5 escape_whitespaces."""
import struct

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 127) << s
        s += 7
        if c < 128:
            return r, i


def decode(b):
    """A message as a list of [field, wire, value] (value: int or bytes)."""
    out, i = [], 0
    while i < len(b):
        k, i = _varint(b, i)
        f, w = k >> 3, k & 7
        if w == 0:
            v, i = _varint(b, i)
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % w)
        out.append([f, w, v])
    return out


def _put_varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        c = v & 127
        v >>= 7
        if v:
            out.append(c | 128)
        else:
            out.append(c)
            return bytes(out)


def encode(fields):
    out = bytearray()
    for f, w, v in fields:
        out += _put_varint(f << 3 | w)
        if w == 0:
            out += _put_varint(v)
        elif w == 2:
            out += _put_varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def set_varint(fields, number, value):
    """Sets a scalar varint field (replacing every occurrence)."""
    fields[:] = [x for x in fields if x[0] != number]
    fields.append([number, 0, int(value)])


class Model:
    def __init__(self, data):
        self.top = decode(data)

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def pieces(self):
        """[(text, score, type)] in id order."""
        out = []
        for f, _, v in self.top:
            if f != 1:
                continue
            text, score, typ = "", 0.0, NORMAL
            for ff, _, vv in decode(v):
                if ff == 1:
                    text = vv.decode("utf-8", "surrogateescape")
                elif ff == 2:
                    score = struct.unpack("<f", vv)[0]
                elif ff == 3:
                    typ = vv
            out.append((text, score, typ))
        return out

    def set_pieces(self, pieces):
        rest = [x for x in self.top if x[0] != 1]
        new = []
        for text, score, typ in pieces:
            fields = [[1, 2, text.encode("utf-8", "surrogateescape")],
                      [2, 5, struct.pack("<f", score)]]
            if typ != NORMAL:
                fields.append([3, 0, typ])
            new.append([1, 2, encode(fields)])
        self.top = new + rest

    def _spec(self, number):
        for x in self.top:
            if x[0] == number:
                return x
        x = [number, 2, b""]
        self.top.append(x)
        return x

    def set_spec_varint(self, spec_number, field, value):
        x = self._spec(spec_number)
        fields = decode(x[2])
        set_varint(fields, field, value)
        x[2] = encode(fields)

    def data(self):
        return encode(self.top)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data())
