# Hand-written stand-in for the LLM-written code of the ascender skill.


def initiation(view):
    return view.depth > 1  # on the first level going up would leave the dungeon and end the game


def termination(view, since_start):
    return view.depth != since_start.view.depth  # done once on another level
