# Hand-written stand-in for the LLM-written policy over skills of the task "find the Oracle".
#
# The Oracle lives in the main dungeon, on a level between 5 and 9: go down until she is in sight, then
# explore around her; leave the Gnomish Mines if the agent wandered into them.

MINES = 2  # the Gnomish Mines' dungeon number


def policy_over_skills(view, memory):
    if view.dungeon == MINES and "ascender" in view.available:
        return "ascender"
    if "oracle" in view.in_sight:
        return "discoverer"
    if "downstairs" in view.in_sight:
        return "descender"
    return "discoverer"
