"""Tokenizer, step splitting and the VisualPRM prompt (MODEL.md sections 1 and 3).

Tokenization follows the Hugging Face slow tokenizer: the prompt is a list of
chunks separated by special tokens; each special token becomes its id and each text
chunk between two special tokens is encoded on its own by SentencePiece. One
deliberate difference: only the template's own special tokens (and the image tokens
that replace <image>) are emitted as ids; text from the request (question, steps) is
always plain text, even if it spells "<|im_end|>".
"""

import json
import math
import os
import sys

import sentencepiece as spm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer"))
import spm_model  # noqa: E402  (the tokenizer.model protobuf, read and rewritten)

PRM_SYSTEM_PROMPT = (
    "You are an advanced AI assistant, designed to serve as a process supervision model. "
    "In this task, I will provide a problem statement followed by the first step of the "
    "solution process. For each subsequent turn, I will give you a new step in the solution. "
    "Your role is to assess whether the solution process is correct up to the current step.\n"
    "\n"
    "- In the **first round**, I will input the problem and the first step of the solution process.\n"
    "- In **each subsequent round**, I will provide the next step in the solution.\n"
    "\n"
    "For each step, you should:\n"
    "\n"
    "- Respond with **\"+\"** if you believe the solution process is correct up to this step.\n"
    "- Respond with **\"-\"** if you detect any issues or errors in the process up to this step.\n"
    "\n"
    "Please note:\n"
    "- Only respond with **\"+\"** or **\"-\"**. Do not provide any additional explanations, "
    "comments, or justifications.\n"
    "\n"
    "Your task is to verify the accuracy and correctness of each step in the given solution process."
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = "<image>"
PLUS, MINUS = "+", "-"


class PromptError(ValueError):
    """A request the prompt cannot be built from (the message says why)."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


class Tokenizer:
    """SentencePiece for text plus the added (special) tokens of tokenizer_config.json."""

    def __init__(self, folder):
        self.special = {}  # content -> id
        keeps_piece = set()  # added ids declared "special": false (text may still spell them)
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            tc = json.load(f)
        for tid, info in tc.get("added_tokens_decoder", {}).items():
            self.special[info["content"]] = int(tid)
            if info.get("special") is False:
                keeps_piece.add(int(tid))
        added_path = os.path.join(folder, "added_tokens.json")
        if os.path.exists(added_path):
            with open(added_path, encoding="utf-8") as f:
                for content, tid in json.load(f).items():
                    self.special[content] = int(tid)
                    keeps_piece.discard(int(tid))
        # MODEL.md section 3: request text is plain text, never a control token. The real
        # model has user-defined pieces at the added tokens' ids ([UNUSED_TOKEN_145] is
        # <|im_end|>'s 92542), which plain sp.encode would produce from text spelling them:
        # those pieces become control pieces here (never matched in text), unless the added
        # token is declared non-special with the piece's own text.
        model = spm_model.Model.load(os.path.join(folder, "tokenizer.model"))
        added = {tid: c for c, tid in self.special.items()}
        pieces = []
        for i, (text, score, kind) in enumerate(model.pieces()):
            if i in added and kind in (spm_model.NORMAL, spm_model.USER_DEFINED, spm_model.UNUSED) \
                    and not (i in keeps_piece and added[i] == text):
                kind = spm_model.CONTROL
            pieces.append((text, score, kind))
        model.set_pieces(pieces)
        self.sp = spm.SentencePieceProcessor(model_proto=model.data())
        self.content = {tid: c for c, tid in self.special.items()}
        bos = tc.get("bos_token", "<s>")
        bos = bos["content"] if isinstance(bos, dict) else bos
        self.bos_id = self.special[bos] if bos in self.special else self.vocab_id(bos)
        self.add_bos = bool(tc.get("add_bos_token", True))

    def encode_text(self, text):
        return list(self.sp.encode(text)) if text else []

    def special_id(self, content):
        if content not in self.special:
            raise PromptError(f"tokenizer has no special token {content}")
        return self.special[content]

    def vocab_id(self, piece):
        """Id of a SentencePiece piece; refuses pieces that are not in the vocabulary."""
        tid = self.sp.piece_to_id(piece)
        if tid == self.sp.unk_id() and piece != self.sp.id_to_piece(tid):
            raise PromptError(f"piece {piece!r} is not in the vocabulary")
        return tid

    def piece(self, tid):
        if tid in self.content:
            return self.content[tid]
        return self.sp.id_to_piece(tid)


def split_steps(response, separator="\n\n", param="responses"):
    """A response as a string (split by separator, nothing stripped, empty steps kept),
    a list of steps, or {"steps": [...]} -> list of step strings."""
    if isinstance(response, str):
        if separator == "":
            raise PromptError("step_separator must not be empty", "step_separator")
        return response.split(separator)
    if isinstance(response, dict):
        if "steps" not in response:
            raise PromptError("response object needs a \"steps\" array", param)
        response = response["steps"]
        param += ".steps"
    if not isinstance(response, list) or not all(isinstance(s, str) for s in response):
        raise PromptError("a response must be a string, an array of strings or {\"steps\": [...]}", param)
    if not response:
        raise PromptError("a response has an empty steps list", param)
    return list(response)


def merge_steps(steps, max_steps):
    """At most max_steps steps: groups of g = ceil(n / max_steps) consecutive steps,
    each joined with "\\n\\n" (MODEL.md section 1)."""
    if max_steps is None or len(steps) <= max_steps:
        return steps
    g = math.ceil(len(steps) / max_steps)
    return ["\n\n".join(steps[k:k + g]) for k in range(0, len(steps), g)]


def question_with_placeholders(question, n_images):
    """Add the <image> lines InternVL expects when the question has none."""
    count = question.count(IMAGE_PLACEHOLDER)
    if count:
        if count != n_images:
            raise PromptError(f"question has {count} <image> placeholders but the request has "
                              f"{n_images} images", "question")
        return question
    if n_images == 1:
        return IMAGE_PLACEHOLDER + "\n" + question
    return "".join(f"Image-{k + 1}: {IMAGE_PLACEHOLDER}\n" for k in range(n_images)) + question


class Special:
    def __init__(self, content):
        self.content = content


class Text:
    def __init__(self, text, assistant=False):
        self.text = text
        self.assistant = assistant  # the "assistant\n+" chunk of an assistant turn


def prompt_segments(system, question, steps, image_tokens):
    """The internvl2_5 (MPT-style) conversation as a list of Special / Text segments.
    image_tokens[k]: number of <IMG_CONTEXT> tokens of image k (num_image_token * tiles)."""
    question = question_with_placeholders(question, len(image_tokens))
    segs = [Special(IM_START), Text("system\n" + system), Special(IM_END), Text("\n")]
    for i, step in enumerate(steps):
        segs += [Special(IM_START), Text("user\n")]
        if i == 0:
            parts = question.split(IMAGE_PLACEHOLDER)
            segs.append(Text("### Question:\n" + parts[0]))
            for k, part in enumerate(parts[1:]):
                segs += [Special(IMG_START)] + [Special(IMG_CONTEXT)] * image_tokens[k] + [Special(IMG_END)]
                segs.append(Text(part))
            segs.append(Text("\n\n### Solution Process:\n" + step))
        else:
            segs.append(Text(step))
        segs += [Special(IM_END), Text("\n"),
                 Special(IM_START), Text("assistant\n+", assistant=True), Special(IM_END), Text("\n")]
    return segs


def tokenize_segments(tok, segs):
    """-> (ids, score_positions). Adjacent Text segments are one chunk, as in the
    prompt string; the score position is the token before the closing "+" of each
    assistant chunk."""
    ids = [tok.bos_id] if tok.add_bos else []
    positions = []
    plus = tok.vocab_id(PLUS)
    i = 0
    while i < len(segs):
        if isinstance(segs[i], Special):
            ids.append(tok.special_id(segs[i].content))
            i += 1
            continue
        chunk, assistant = "", False
        while i < len(segs) and isinstance(segs[i], Text):
            chunk += segs[i].text
            assistant = assistant or segs[i].assistant
            i += 1
        chunk_ids = tok.encode_text(chunk)
        if assistant:
            if len(chunk_ids) < 2 or chunk_ids[-1] != plus:
                raise PromptError(f"assistant chunk {chunk!r} does not end with the '+' token: "
                                  f"{[tok.piece(t) for t in chunk_ids]}")
            positions.append(len(ids) + len(chunk_ids) - 2)
        ids += chunk_ids
    return ids, positions


def build_prompt(tok, system, question, steps, image_tokens):
    return tokenize_segments(tok, prompt_segments(system, question, steps, image_tokens))


def prompt_text(system, question, steps, image_tokens):
    """The prompt as one string (for reading and for the self-test)."""
    return "".join(s.content if isinstance(s, Special) else s.text
                   for s in prompt_segments(system, question, steps, image_tokens))
