OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> s = np.array([[3.0, 4.0], [0.0, 0.0]])\n'
                                               '>>> e = np.array([[1.0, 0.0], [0.0, 2.0]]) * np.sqrt(2.5 / 5)\n'
                                               '>>> with own_work():\n'
                                               '...     value = sdr(s, s + e)\n'
                                               ">>> assert isinstance(value, float), f'return a float, got {type(value)}'\n"
                                               ">>> assert abs(value - 10.0) < 1e-09, f'expected 10 dB, got {value}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
