OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> token = 'c0ffee' * 10 + 'abcd'\n"
                                               '>>> with own_work():\n'
                                               "...     same, last, missing = (same_token(token, token), same_token(token[:-1] + '0', token), same_token(None, token))\n"
                                               '>>> assert same is True, f"the session\'s own token must be accepted: expected True, got {same!r}"\n'
                                               ">>> assert last is False, f'a token that differs in one character must be refused: expected False, got {last!r}'\n"
                                               ">>> assert missing is False, f'no token at all (None) must be refused: expected False, got {missing!r}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
