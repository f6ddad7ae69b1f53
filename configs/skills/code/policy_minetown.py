# Hand-written stand-in for the LLM-written policy over skills of the task "reach Minetown".
#
# Minetown is a few levels down the Gnomish Mines, the first Mines level with shops, a temple and a watch:
# enter the Mines (from level 2, 3 or 4 of the main dungeon), then go down until town is in sight.

MINES = 2  # the Gnomish Mines' dungeon number
LAST_BRANCH_LEVEL = 4
TOWN_SIGNS = {"shopkeeper", "altar", "priest", "watchman"}


def policy_over_skills(view, memory):
    if view.dungeon == MINES and TOWN_SIGNS & view.in_sight:
        return "discoverer"
    if view.dungeon != MINES and view.depth > LAST_BRANCH_LEVEL and "ascender" in view.available:
        return "ascender"
    if "downstairs" in view.in_sight:
        return "descender"
    return "discoverer"
