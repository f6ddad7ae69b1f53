# Hand-written stand-in for the LLM-written policy over skills of the task "golden exit": reach Minetown,
# then climb back up to the first level of the dungeon.
#
# Memory keeps whether town was seen; after that the agent goes up whenever stairs up are in sight.

MINES = 2  # the Gnomish Mines' dungeon number
LAST_BRANCH_LEVEL = 4
TOWN_SIGNS = {"shopkeeper", "altar", "priest", "watchman"}


def policy_over_skills(view, memory):
    if view.dungeon == MINES and TOWN_SIGNS & view.in_sight:
        memory["town_seen"] = True
    if memory.get("town_seen"):
        if "upstairs" in view.in_sight and "ascender" in view.available:
            return "ascender"
        return "discoverer"
    if view.dungeon != MINES and view.depth > LAST_BRANCH_LEVEL and "ascender" in view.available:
        return "ascender"
    if "downstairs" in view.in_sight:
        return "descender"
    return "discoverer"
