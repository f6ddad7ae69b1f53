# Hand-written stand-in for the LLM-written policy over skills of the task "golden exit": gather at least
# 20 gold and kill 25 monsters on dungeon levels 1-3, then leave the dungeon by the up staircase of level 1.
#
# Kills are counted in memory from the captions the policy sees (it is asked only when a skill ends, so
# the count is a lower bound; the task itself counts every kill). Until both goals are met the agent
# explores (and fights on the way), going down to level 3 at most; then it climbs.

GOLD, KILLS, DEEPEST = 20, 25, 3


def policy_over_skills(view, memory):
    if view.message.startswith(("You kill", "You destroy")):
        memory["kills"] = memory.get("kills", 0) + 1
    if view.gold >= GOLD and memory.get("kills", 0) >= KILLS:
        return "ascender" if "ascender" in view.available else "discoverer"
    if view.depth < DEEPEST and "downstairs" in view.in_sight and memory.get("explored_here") == view.depth:
        return "descender"
    memory["explored_here"] = view.depth
    return "discoverer"
