"""The Bot API stand-in lives in the package now, as `bot.standin`, shared by the tests and
`carebot demo`; this module keeps the tests' and the benches' imports working."""

from bot.standin import *  # noqa: F403
