# Hand-written stand-in for the LLM-written code of the worshipper skill.
#
# The worshipper needs an altar and something to drop on it. As for the merchant, an empty inventory
# tuple means the env did not report the inventory, so only the altar is checked.


def initiation(view):
    return "altar" in view.in_sight


def termination(view, since_start):
    return since_start.turns >= 10_000  # identifying items at an altar has no natural end: a long time box
