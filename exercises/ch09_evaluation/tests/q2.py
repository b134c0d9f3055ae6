OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> nan = np.nan\n'
                                               '>>> scores = [np.array([[1.0, 2.0, 9.0], [0.0, nan, 4.0]]), np.array([[5.0, 5.0, 5.0, 5.0], [1.0, 1.0, 1.0, 100.0]]), np.array([[-3.0, 0.0], [nan, '
                                               '2.0]])]\n'
                                               '>>> with own_work():\n'
                                               '...     result = paper_median(scores)\n'
                                               ">>> assert np.shape(result) == (2,), f'one value per source: expected shape (2,), got {np.shape(result)}'\n"
                                               ">>> assert not np.isnan(result).any(), 'NaN windows must be ignored, not propagated'\n"
                                               ">>> assert np.allclose(result, [2.0, 2.0]), f'expected [2, 2], got {result}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
