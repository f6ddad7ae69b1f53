# Hand-written stand-in for the LLM-written policy over skills used while training.
#
# Every skill must get steps to learn from: the merchant and the worshipper whenever a shop or an altar is
# in sight (they are rare), otherwise the discoverer, the descender and the ascender in turn.

CYCLE = ("discoverer", "descender", "ascender")
WHEN_POSSIBLE = ("merchant", "worshipper")


def policy_over_skills(view, memory):
    for name in WHEN_POSSIBLE:
        if name in view.available:
            return name
    turn = memory.get("next", 0)
    for offset in range(len(CYCLE)):
        name = CYCLE[(turn + offset) % len(CYCLE)]
        if name in view.available:
            memory["next"] = (turn + offset + 1) % len(CYCLE)
            return name
    return view.available[0]
