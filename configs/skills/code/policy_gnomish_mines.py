# Hand-written stand-in for the LLM-written policy over skills of the task "reach the Gnomish Mines".
#
# The Mines branch off the main dungeon from a second down staircase on level 2, 3 or 4: look for stairs
# down on those levels, and come back up when the agent went deeper in the main dungeon.

MINES = 2  # the Gnomish Mines' dungeon number
LAST_BRANCH_LEVEL = 4


def policy_over_skills(view, memory):
    if view.dungeon == MINES:
        return "discoverer"
    if view.depth > LAST_BRANCH_LEVEL and "ascender" in view.available:
        return "ascender"
    if "downstairs" in view.in_sight:
        return "descender"
    return "discoverer"
