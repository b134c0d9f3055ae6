OK_FORMAT = True

test = {   'name': 'q3',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> attempts = {'login:address:10.0.0.1': [1000.0, 1010.0], 'login:address:10.0.0.2': [1010.0]}\n"
                                               '>>> with own_work():\n'
                                               "...     first = retry_after(attempts, [('login:address:10.0.0.1', 3)], 60, 1020.0)\n"
                                               "...     refused = retry_after(attempts, [('login:address:10.0.0.1', 2)], 60, 1020.0)\n"
                                               "...     other = retry_after(attempts, [('login:address:10.0.0.2', 2)], 60, 1020.0)\n"
                                               "...     later = retry_after(attempts, [('login:address:10.0.0.1', 2)], 60, 1061.0)\n"
                                               ">>> assert first is None, f'two attempts under a limit of three: expected None, got {first!r}'\n"
                                               ">>> assert refused == 40, f'the first attempt leaves the window at 1060: expected 40 s from 1020, got {refused!r}'\n"
                                               ">>> assert other is None, f'another address has its own count: expected None, got {other!r}'\n"
                                               ">>> assert later is None, f'at 1061 the first attempt has left the window: expected None, got {later!r}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
