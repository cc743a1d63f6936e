"""Writes the deterministic training corpus of the tiny tokenizer to stdout: English
math reasoning (steps of solutions with LaTeX and numbers), the PRM system prompt of
MODEL.md and the conversation template's words, some code and some CJK. One sentence
per line (spm_train reads lines). Same output on every run (seeded)."""
import random
import sys

PRM_SYSTEM_PROMPT = """You are an advanced AI assistant, designed to serve as a process supervision model. In this task, I will provide a problem statement followed by the first step of the solution process. For each subsequent turn, I will give you a new step in the solution. Your role is to assess whether the solution process is correct up to the current step.

- In the **first round**, I will input the problem and the first step of the solution process.
- In **each subsequent round**, I will provide the next step in the solution.

For each step, you should:

- Respond with **"+"** if you believe the solution process is correct up to this step.
- Respond with **"-"** if you detect any issues or errors in the process up to this step.

Please note:
- Only respond with **"+"** or **"-"**. Do not provide any additional explanations, comments, or justifications.

Your task is to verify the accuracy and correctness of each step in the given solution process."""

SUBJECTS = ["the triangle", "the circle", "the rectangle", "the square", "the function",
            "the sequence", "the polynomial", "the matrix", "the probability", "the angle",
            "the area", "the perimeter", "the volume", "the slope", "the line", "the graph",
            "the equation", "the inequality", "the sum", "the product", "the remainder",
            "the average", "the ratio", "the speed", "the distance", "the price", "the cost"]
VERBS = ["is equal to", "equals", "is", "becomes", "can be written as", "is given by",
         "must be", "is greater than", "is less than", "is at most", "is at least",
         "simplifies to", "reduces to", "is divisible by", "is proportional to"]
OPENERS = ["First, we", "Next, we", "Then we", "Now we", "Finally, we", "We", "So we",
           "Therefore, we", "Hence we", "Thus we", "To solve this, we", "Let us", "We can"]
ACTIONS = ["compute", "find", "calculate", "substitute", "simplify", "note that", "observe that",
           "use the formula", "apply the Pythagorean theorem to get", "solve for x to get",
           "multiply both sides by", "divide both sides by", "add", "subtract", "factor",
           "expand", "check that", "conclude that", "recall that", "know that"]
NAMES = ["x", "y", "z", "n", "k", "a", "b", "c", "AB", "BC", "AC", "r", "h", "m", "p", "q"]
LATEX = [r"\frac{{{a}}}{{{b}}}", r"\sqrt{{{a}}}", r"{v}^{{{a}}}", r"{v}^2", r"{v}_{{{a}}}",
         r"\pi r^2", r"2\pi r", r"\angle {V}", r"\triangle {V}", r"\sin {a}^\circ",
         r"\cos \theta", r"\tan \alpha", r"\log_{{{a}}} {b}", r"\sum_{{i=1}}^{{{a}}} i",
         r"\int_0^{{{a}}} {v}\,d{v}", r"\left( {v} + {a} \right)", r"{a} \times {b}",
         r"{a} \cdot {b}", r"{v} \leq {a}", r"{v} \geq {b}", r"{v} \neq {a}",
         r"\dfrac{{\sqrt{{{a}}}}}{{{b}}}", r"\boxed{{{a}}}", r"\overline{{{V}}}",
         r"\text{{cm}}^2", r"{a}\%", r"\mathbb{{R}}", r"\{{ {a}, {b} \}}",
         r"\begin{{aligned}} {v} &= {a} \\ {v} &= {b} \end{{aligned}}"]
CJK = ["因此，三角形的面积是", "解：设未知数为", "所以答案为", "第一步，我们计算", "根据勾股定理",
       "这个问题的答案是", "由题意可知", "正确", "错误", "我们可以得到", "函数的最大值",
       "请判断每一步是否正确。", "这是一个数学问题。", "图中的角度", "概率为"]
CODE = ["def solve(n):", "    return n * (n + 1) // 2", "for i in range(10):",
        "    total += i", "if x > 0:", "print(total)", "x = [1, 2, 3]"]


def number(rng):
    k = rng.random()
    if k < 0.5:
        return str(rng.randint(0, 100))
    if k < 0.8:
        return str(rng.randint(0, 100000))
    return "%.*f" % (rng.randint(1, 3), rng.uniform(0, 1000))


def latex(rng):
    t = rng.choice(LATEX)
    return t.format(a=number(rng), b=number(rng), v=rng.choice(NAMES), V=rng.choice(NAMES))


def math_sentence(rng):
    k = rng.random()
    if k < 0.35:
        return "%s %s %s." % (rng.choice(SUBJECTS).capitalize(), rng.choice(VERBS),
                              number(rng))
    if k < 0.7:
        return "%s %s $%s = %s$." % (rng.choice(OPENERS), rng.choice(ACTIONS), latex(rng),
                                      latex(rng))
    if k < 0.85:
        return "Step %d: %s %s %s, so %s %s %s." % (
            rng.randint(1, 12), rng.choice(OPENERS), rng.choice(ACTIONS),
            rng.choice(SUBJECTS), rng.choice(NAMES), rng.choice(VERBS), number(rng))
    if k < 0.93:
        return "$$%s + %s - %s = %s$$" % (latex(rng), number(rng), latex(rng), number(rng))
    return "The answer is %s. %s" % (number(rng), rng.choice(["+", "-", "+ +", "- -", "+ -"]))


def main():
    rng = random.Random(20240611)
    out = []
    for _ in range(40):
        out.extend(line for line in PRM_SYSTEM_PROMPT.split("\n") if line)
        out.extend(["### Question:", "### Solution Process:", "system", "user", "assistant",
                    "+", "-", "assistant +", "assistant -"])
    for _ in range(30000):
        out.append(math_sentence(rng))
    for _ in range(1500):
        out.append(rng.choice(CJK) + number(rng) + rng.choice(["。", "，", "：", "；"]))
    for _ in range(500):
        out.append(rng.choice(CODE))
    rng.shuffle(out)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
